"""The one error class of `gpt.weights`: a weight file or folder that cannot be used as is."""
from __future__ import annotations

from minigrad.untrusted import FileFormatError


class WeightsError(FileFormatError):
    """A checkpoint file or folder is malformed, incomplete or does not fit the model.

    The message always names the file and, where there is one, the tensor, with the
    expected and the actual value (shape, dtype, size, checksum).
    """
