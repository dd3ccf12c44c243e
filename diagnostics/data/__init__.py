"""The data layer: datasets, array files, audio, the dataset store and uploads.

Layers, lowest first: ``files`` (regular files, free space, claimed folders, atomic outputs)
<- ``dataset`` (the type, the split) <- ``arrays``, ``builtin``, ``store`` <-
``audio`` <- ``uploads``, ``ingest`` (the one entry point).  A module imports only lower ones.
"""
