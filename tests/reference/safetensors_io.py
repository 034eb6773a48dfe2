# Minimal .safetensors reader and writer for the reference scripts, written from the file
# format so the tests depend on nothing but torch and numpy.
"""Read and write .safetensors files (F32, F16, BF16) by hand.

Layout: 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a
multiple of 8), then the raw little-endian tensor data, contiguous and without holes.
"""

import json
import struct

import numpy as np
import torch

# dtype name in the header -> (torch dtype, bytes per element, numpy dtype of the raw bits)
_DTYPES = {
    "F32": (torch.float32, 4, np.dtype("<f4")),
    "F16": (torch.float16, 2, np.dtype("<f2")),
    "BF16": (torch.bfloat16, 2, np.dtype("<i2")),
}
_TORCH_TO_NAME = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
DTYPE_NAMES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


def _tensor_bytes(tensor):
    tensor = tensor.detach().contiguous().cpu()
    if tensor.dtype == torch.bfloat16:
        # numpy has no bfloat16: move the bits through int16.
        return tensor.view(torch.int16).numpy().astype("<i2").tobytes()
    return tensor.numpy().astype(_DTYPES[_TORCH_TO_NAME[tensor.dtype]][2]).tobytes()


def save(path, tensors, dtype=None, metadata=None):
    """Write an ordered mapping name -> torch tensor.

    dtype: "f32" / "f16" / "bf16" converts every tensor before writing; None keeps each
    tensor's own dtype (which must be one of F32, F16, BF16).
    """
    header = {}
    chunks = []
    offset = 0
    for name, tensor in tensors.items():
        if dtype is not None:
            tensor = tensor.to(_DTYPES[DTYPE_NAMES[dtype]][0])
        if tensor.dtype not in _TORCH_TO_NAME:
            raise ValueError("%s: unsupported dtype %s" % (name, tensor.dtype))
        data = _tensor_bytes(tensor)
        header[name] = {
            "dtype": _TORCH_TO_NAME[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for data in chunks:
            f.write(data)


def load(path, upcast=True):
    """Read a file into {name: tensor}; upcast=True converts every tensor to float32.

    Raises ValueError naming the file and tensor when the file is inconsistent.
    """
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: shorter than the 8-byte header length" % path)
    (header_len,) = struct.unpack("<Q", blob[:8])
    if 8 + header_len > len(blob):
        raise ValueError("%s: header length %d runs past the end" % (path, header_len))
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    data = memoryview(blob)[8 + header_len:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in _DTYPES:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, entry["dtype"]))
        torch_dtype, size, raw = _DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        count = 1
        for dim in entry["shape"]:
            count *= dim
        if end - begin != count * size or end > len(data) or begin < 0:
            raise ValueError("%s: tensor %s has offsets %s inconsistent with shape %s"
                             % (path, name, entry["data_offsets"], entry["shape"]))
        array = np.frombuffer(data[begin:end], dtype=raw).copy()
        tensor = torch.from_numpy(array)
        if torch_dtype == torch.bfloat16:
            tensor = tensor.view(torch.bfloat16)
        tensor = tensor.reshape(entry["shape"])
        tensors[name] = tensor.float() if upcast else tensor
    return tensors


def load_metadata(path):
    """The header's __metadata__ and the {name: entry} table, without reading the data."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len).decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    return metadata, header
