"""Training the shipped models from ../shared/datasets: `python -m app.training MODEL` (or `radlens train`)."""

from __future__ import annotations


def pick_device(name: str):
    """The torch device the app would choose (app.inference.device decides, in one place for the app, predict
    and training); a choice that cannot be had ends the command with the reason."""
    from app.inference.device import DeviceError, choose_device

    try:
        return choose_device(name)
    except DeviceError as error:
        raise SystemExit(f"radlens train: --device {name}: {error.reason}") from None
