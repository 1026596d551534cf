"""Small PyTorch checkpoints for the converter tests, in both serialisation formats.

Each checkpoint holds the same state_dict: f32, f16, bf16 and f64 tensors, a transposed
(non-contiguous) tensor, an expanded (stride 0) tensor, a slice that starts inside a shared storage, a 0-d tensor, an
nn.Parameter and an int64 `num_batches_tracked` buffer. The nested variants wrap it as
`{"state_dict": {"module." + name: tensor}, "epoch": 3}` like a DataParallel training
checkpoint; `plain_pickle.pt` is the state_dict written by pickle.dump instead of torch.save.
`expected.safetensors` holds every float tensor as contiguous f32, written by
python's safetensors, so the converter can be checked bit for bit. `mixed_dtypes.safetensors`
holds f16/bf16/i64 tensors and their f32 values for the safetensors loader.
`huge_view.pt` stores one float viewed as a billion, which the reader must refuse.

Run from the repository root with PyTorch and safetensors installed (any venv outside the repo):
    python tools/make_pth_fixtures.py
Writes tests/fixtures/weights/*.
"""
import collections
import os
import pickle

import torch
from safetensors.torch import save_file

OUT = "tests/fixtures/weights"
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(11)

shared = torch.randn(10)
sd = collections.OrderedDict()
sd["conv.weight"] = torch.nn.Parameter(torch.randn(2, 3, 3, 3))
sd["conv.bias"] = torch.randn(2)
sd["bn.running_mean"] = torch.randn(2)
sd["bn.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
sd["half.weight"] = torch.randn(3, 5).half()
sd["bf16.weight"] = torch.randn(4).bfloat16()
sd["double.weight"] = torch.randn(2, 2, dtype=torch.float64)
sd["fc.weight"] = torch.randn(3, 4).t()  # 4x3, strides (1, 4)
sd["permuted"] = torch.randn(2, 3, 4).permute(2, 0, 1)
sd["shared.head"] = shared[:4]
sd["shared.tail"] = shared[6:].view(2, 2)  # storage offset 6
sd["scale"] = torch.tensor(1.5)
sd["expanded"] = torch.randn(1, 4).expand(3, 4)  # stride 0 on the first axis
assert not sd["fc.weight"].is_contiguous() and not sd["permuted"].is_contiguous()

expected = {
    k: v.detach().float().contiguous().clone() for k, v in sd.items() if v.is_floating_point()
}
save_file(expected, f"{OUT}/expected.safetensors")

nested = {"state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items()), "epoch": 3}
torch.save(sd, f"{OUT}/plain_zip.pt")
torch.save(sd, f"{OUT}/plain_legacy.pt", _use_new_zipfile_serialization=False)
torch.save(nested, f"{OUT}/nested_zip.pt")
torch.save(nested, f"{OUT}/nested_legacy.pt", _use_new_zipfile_serialization=False)
with open(f"{OUT}/plain_pickle.pt", "wb") as f:
    pickle.dump(sd, f, protocol=2)  # storages become torch.storage._load_from_bytes calls

# A 4 GB view of a single stored float: the reader must refuse it rather than allocate.
torch.save({"huge": torch.zeros(1).expand(10**9)}, f"{OUT}/huge_view.pt")

values = torch.randn(2, 3) * 100
save_file(
    {
        "as_f16": values.half(),
        "as_bf16": values.bfloat16(),
        "as_f32": values,
        "f16_in_f32": values.half().float(),
        "bf16_in_f32": values.bfloat16().float(),
        "counts": torch.arange(4, dtype=torch.int64),
    },
    f"{OUT}/mixed_dtypes.safetensors",
)
for name in sorted(os.listdir(OUT)):
    print(name, os.path.getsize(f"{OUT}/{name}"))
