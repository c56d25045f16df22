"""Qt-free loaders: files and folders to `ImageInfo`, decoded `LoadedImage` and studies."""
