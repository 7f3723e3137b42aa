"""Target addresses as people may see them (metadata, logs, errors): never a credential."""

from urllib.parse import urlsplit


def without_credentials(uri: str) -> str:
    """A URL without user, password, query or fragment (signed URLs and some stores carry keys there); a local
    path unchanged."""
    parts = urlsplit(uri)
    if len(parts.scheme) <= 1:  # a path (a Windows drive letter parses as a one-letter scheme)
        return uri
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
