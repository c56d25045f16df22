# The AI tasks: app/inference/tasks/__init__.py imports its modules by name (pkgutil), so that adding a
# task is adding a file; the analysis cannot see those imports, so every module of the package is named here.
from PyInstaller.utils.hooks import collect_submodules

hiddenimports = collect_submodules("app.inference.tasks")
