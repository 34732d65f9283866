"""Rebuilding objects from their ``{"type": ClassName, **fields}`` dicts (nonidealities, layers)."""


def build_from_dict(registry, data, what):
    """``registry[data["type"]](**fields)``; a ValueError naming ``what`` (e.g. "nonideality")
    for a non-dict, a missing or unknown type, or fields the class does not take."""
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"{what} must be a dict with a 'type' key; got {data!r}")
    name = data["type"]
    if name not in registry:
        raise ValueError(f"{what} type must be one of {', '.join(sorted(registry))}; got {name!r}")
    fields = {key: value for key, value in data.items() if key != "type"}
    try:
        return registry[name](**fields)
    except TypeError as exc:
        raise ValueError(f"bad fields for {what} {name}: {exc}") from None
