"""What the file utilities must produce, written the plain way, for the tests to compare against."""


def greedy_parts(records: list[bytes], header: bytes, max_bytes: int) -> list[bytes]:
    """The parts the splitter must write: whole records in order, each part as full as `max_bytes` allows."""
    parts: list[bytes] = []
    current = header
    for r in records:
        if len(current) + len(r) > max_bytes and current != header:
            parts.append(current)
            current = header
        current += r
    return [*parts, current]
