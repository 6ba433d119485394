"""PACS connectivity: DICOMweb (QIDO-RS / WADO-RS) as a source for the indexer, and a DICOM C-STORE
receiver (``echosearch listen``). The indexing itself stays the indexer's one pipeline."""
