"""Load time and memory of a 100M-parameter checkpoint (issue 11, point 5).

    .venv/bin/python bench/checkpoint_load.py --before /tmp/hwnas-old/src --repeat 3

Writes a random LLaMA-style super-network of about 100M weights twice, as an hwnas
checkpoint (``hwnas train`` writes these; ``hwnas instatune`` and ``hwnas run --out`` on a
trained folder read them) and as a Hugging Face folder (``load_llama``), then loads each in
a fresh process, alternating the code under test (``--before``: another checkout's
``src``, e.g. a ``git worktree`` of an earlier commit) with this one, so both see the same
machine at the same moments. Each load reports its seconds and how far it raised the
process's peak memory above what it held before (the network's own weights included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SHAPE = {"vocab_size": 32_000, "context": 256, "max_context": 256, "hidden_size": 768,
         "num_layers": 12, "num_heads": 12, "num_kv_heads": 4, "intermediate_size": 2_560,
         "tie_embeddings": True}  # fmt: skip

# Run in a child process with the code under test first on sys.path.
CHILD = r"""
import json, sys, time
import torch
from hwnas.families.llama.config import LlamaConfig
from hwnas.families.llama.network import ElasticLlama

def status_mib(field):  # VmRSS: held now; VmHWM: the peak (ru_maxrss survives exec)
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024

def rss_mib():
    return status_mib("VmRSS")

kind, path, shape = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(1)
if kind == "checkpoint":
    from hwnas.families import load_checkpoint
    with torch.device("meta"):
        net = ElasticLlama(LlamaConfig(**shape))
    net.to_empty(device="cpu")  # the network a run builds before it loads, uninitialised
    before = rss_mib()
    started = time.perf_counter()
    load_checkpoint(path, net)
else:
    from hwnas.families.llama.pretrained import load_llama
    with torch.device("meta"):  # the first network built there imports torch's meta code
        ElasticLlama(LlamaConfig(num_layers=1))
    before = rss_mib()
    started = time.perf_counter()
    net = load_llama(path)
seconds = time.perf_counter() - started
peak = status_mib("VmHWM")
print(json.dumps({"seconds": seconds, "held_before_mib": before, "peak_mib": peak,
                  "peak_above_before_mib": peak - before,
                  "params": sum(p.numel() for p in net.parameters())}))
"""


def write_models(folder: Path) -> tuple[Path, Path]:
    """The same random weights as an hwnas checkpoint and as a Hugging Face folder."""
    import torch
    from safetensors.torch import save_file

    from hwnas.families import save_checkpoint
    from hwnas.families.llama.config import LlamaConfig
    from hwnas.families.llama.network import ElasticLlama
    from hwnas.families.llama.pretrained import hf_names

    torch.manual_seed(0)
    config = LlamaConfig(**SHAPE)
    net = ElasticLlama(config)
    checkpoint = save_checkpoint(folder / "supernet.safetensors", net, {"epoch": 0})
    hf = folder / "hf"
    hf.mkdir()
    state = net.state_dict()
    save_file({theirs: state[ours].contiguous() for theirs, ours in hf_names(config).items()},
              str(hf / "model.safetensors"))  # fmt: skip
    (hf / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"],
        "vocab_size": SHAPE["vocab_size"], "hidden_size": SHAPE["hidden_size"],
        "num_hidden_layers": SHAPE["num_layers"], "num_attention_heads": SHAPE["num_heads"],
        "num_key_value_heads": SHAPE["num_kv_heads"],
        "intermediate_size": SHAPE["intermediate_size"],
        "max_position_embeddings": SHAPE["max_context"], "tie_word_embeddings": True,
    }))  # fmt: skip
    return checkpoint, hf


def load_once(src: Path, kind: str, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    shape = SHAPE if kind == "checkpoint" else {}  # a folder's config.json gives its own
    result = subprocess.run([sys.executable, "-c", CHILD, kind, str(path), json.dumps(shape)],
                            env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True,
                        help="src folder of the code to compare against")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="where to write the models")
    args = parser.parse_args()
    after = Path(__file__).resolve().parent.parent / "src"
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        checkpoint, hf = write_models(Path(tmp))
        runs: dict[str, list[dict]] = {"before": [], "after": [], "hf_folder": []}
        for _ in range(args.repeat):
            runs["before"].append(load_once(args.before, "checkpoint", checkpoint))
            runs["after"].append(load_once(after, "checkpoint", checkpoint))
            runs["hf_folder"].append(load_once(after, "hf", hf))
    summary = {
        name: {
            "params": records[0]["params"],
            "median_seconds": statistics.median(r["seconds"] for r in records),
            "median_peak_above_before_mib": statistics.median(
                r["peak_above_before_mib"] for r in records
            ),
            "runs": records,
        }
        for name, records in runs.items()
    }
    summary["weights_mib"] = summary["after"]["params"] * 4 / 2**20
    summary["after_over_before_seconds"] = (
        summary["after"]["median_seconds"] / summary["before"]["median_seconds"]
    )
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
