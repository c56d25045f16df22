"""Talking to a PACS: settings, query and retrieve, a storage SCP and sending (Qt-free, pynetdicom/dicomweb-client)."""
