"""AI results and studies written as DICOM for the PACS: findings SR, secondary captures, de-identified copies."""
