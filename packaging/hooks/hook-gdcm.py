# GDCM (python-gdcm): its SWIG module is imported by name, and it reads its DICOM dictionaries
# from _gdcm/XML at run time. Its command-line tools stay out.
from PyInstaller.utils.hooks import collect_data_files

hiddenimports = ["_gdcm.gdcmswig"]
datas = collect_data_files("_gdcm", includes=["XML/*"])
