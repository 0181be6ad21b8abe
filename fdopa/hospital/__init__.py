"""Hospital data in: DICOM PET to SUV, FLAIR co-registration and label maps from a tumour mask.

* :mod:`fdopa.hospital.dicom` — DICOM series of an export: discovery, grouping, voxel geometry;
* :mod:`fdopa.hospital.suv` — SUVbw and frame timing from the PET headers;
* :mod:`fdopa.hospital.plan` — which participants a DICOM folder holds, their FLAIR and ids;
* :mod:`fdopa.hospital.study` — one study's PET in SUV with its sidecars, and its FLAIR volume;
* :mod:`fdopa.hospital.importer` — a DICOM folder → the cohort layout (``fdopa import``);
* :mod:`fdopa.hospital.registration` — rigid FLAIR → PET registration (SimpleITK) and its QC;
* :mod:`fdopa.hospital.masks` — tumour masks from NIfTI, DICOM SEG or RTSTRUCT;
* :mod:`fdopa.hospital.labels` — the four-class label map from a tumour mask by atlas
  registration (``fdopa labels``);
* :mod:`fdopa.hospital.qc` — QC pictures (the sub-commands: :mod:`fdopa.cli.dicom_import`,
  :mod:`fdopa.cli.labels`).
"""
