"""Slot filling with the Theano tutorial's Elman network (elman.slu.ElmanSLU), on a generated task.

The task imitates ATIS flight requests: sentences come from templates ("show me flights from
{fromloc} to {toloc} on {day}") whose slots are filled from per-slot vocabularies, some values
several words long ("salt lake city"), and every word is labelled in the BIO scheme
(B-fromloc, I-fromloc, ..., O). The same cities fill "from" and "to" slots, so the network must
use the context window and its recurrent state, not just the word, to tell them apart.

The model reads each word through a window of `--window` embeddings, trains by SGD one sentence
at a time (the tutorial's loop, embeddings normalised after every step), and is scored on
held-out sentences: per-token F1 over slot words and conlleval's chunk F1.

    python examples/slot_filling.py                 # default size, well under a minute
    python examples/slot_filling.py --train 300 --test 100 --epochs 3   # a few seconds
"""

import argparse
import time

import numpy as np

from elman.slu import ElmanSLU

SLOT_VALUES = {
    "city": ["boston", "denver", "atlanta", "dallas", "seattle", "chicago", "pittsburgh",
             "baltimore", "new york", "san francisco", "los angeles", "salt lake city",
             "las vegas", "washington", "philadelphia", "miami", "st. louis", "kansas city"],
    "day": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
    "period": ["morning", "afternoon", "evening", "night"],
    "airline": ["united", "delta", "american airlines", "us air", "continental", "southwest"],
    "class": ["first class", "economy", "business class", "coach"],
}
# Slot name in a template -> (label type, vocabulary it is filled from).
SLOTS = {"fromloc": ("fromloc", "city"), "toloc": ("toloc", "city"), "stoploc": ("stoploc", "city"),
         "day": ("depart_day", "day"), "return_day": ("return_day", "day"),
         "period": ("depart_period", "period"), "airline": ("airline", "airline"),
         "class": ("class", "class")}
# Spoken-language fillers, inserted at random places (labelled O): they shift the context
# windows, so the network cannot rely on fixed positions.
FILLERS = ["please", "uh", "um", "okay", "well", "actually", "maybe"]
FILLER_RATE = 0.08  # chance of a filler before each word
TEMPLATES = [
    "show me flights from {fromloc} to {toloc}",
    "i want to fly from {fromloc} to {toloc} on {day}",
    "list {airline} flights from {fromloc} to {toloc} in the {period}",
    "what are the {class} fares from {fromloc} to {toloc}",
    "i need a flight to {toloc} from {fromloc} on {day} {period}",
    "flights leaving {fromloc} in the {period} and arriving in {toloc}",
    "does {airline} fly to {toloc}",
    "give me the cheapest {class} ticket from {fromloc} to {toloc} on {day}",
    "which airlines fly between {fromloc} and {toloc}",
    "what flights go to {toloc} on {day} {period}",
    "is there a {airline} flight from {fromloc} to {toloc} {day} {period}",
    "i would like a {class} seat to {toloc} leaving {fromloc} on {day}",
    "show me flights from {fromloc} to {toloc} with a stop in {stoploc}",
    "i want to go from {fromloc} to {toloc} via {stoploc} on {day}",
    "round trip from {fromloc} to {toloc} leaving {day} and returning {return_day}",
    "fly me to {toloc} on {day} and back to {fromloc} on {return_day}",
    "a {airline} flight from {fromloc} stopping in {stoploc} on the way to {toloc}",
]


# --------------------------------------------------------------------------- #
# The task
# --------------------------------------------------------------------------- #

def labels_of_task():
    """'O' then B-/I- for every slot type: the classes, in a fixed order."""
    types = sorted({label for label, _ in SLOTS.values()})
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


def generate_sentence(rng):
    """One (words, labels) pair from a random template with random slot values."""
    template = TEMPLATES[rng.integers(len(TEMPLATES))]
    words, labels = [], []
    for token in template.split():
        if rng.random() < FILLER_RATE:
            words.append(FILLERS[rng.integers(len(FILLERS))])
            labels.append("O")
        if token.startswith("{"):
            slot_type, vocabulary = SLOTS[token[1:-1]]
            value = SLOT_VALUES[vocabulary][rng.integers(len(SLOT_VALUES[vocabulary]))].split()
            words += value
            labels += [f"B-{slot_type}"] + [f"I-{slot_type}"] * (len(value) - 1)
        else:
            words.append(token)
            labels.append("O")
    return words, labels


def vocabulary_of_task():
    """Every word the templates and slot values can produce, sorted."""
    words = {w for t in TEMPLATES for w in t.split() if not w.startswith("{")}
    words |= {w for values in SLOT_VALUES.values() for v in values for w in v.split()}
    words |= set(FILLERS)
    return sorted(words)


def make_dataset(n, rng, word_index, label_index):
    """n sentences as (word indices, label indices) int32 arrays."""
    data = []
    for _ in range(n):
        words, labels = generate_sentence(rng)
        data.append((np.array([word_index[w] for w in words], dtype=np.int32),
                     np.array([label_index[y] for y in labels], dtype=np.int32)))
    return data


# --------------------------------------------------------------------------- #
# Scores
# --------------------------------------------------------------------------- #

def token_f1(gold, predicted, outside):
    """Micro F1 over words: a word counts when its gold or predicted label is not 'O'."""
    gold, predicted = np.concatenate(gold), np.concatenate(predicted)
    correct = np.sum((gold == predicted) & (gold != outside))
    predicted_slots, gold_slots = np.sum(predicted != outside), np.sum(gold != outside)
    precision = correct / max(predicted_slots, 1)
    recall = correct / max(gold_slots, 1)
    return 2 * precision * recall / max(precision + recall, 1e-12)


def chunks(labels):
    """The (type, start, end) chunks of one BIO label sequence, as conlleval reads them
    (an I- that does not continue a chunk of its type starts a new one)."""
    found, start, kind = [], None, None
    for i, label in enumerate(list(labels) + ["O"]):
        prefix, _, label_type = label.partition("-")
        continues = prefix == "I" and label_type == kind
        if start is not None and not continues:
            found.append((kind, start, i))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = i, label_type
    return set(found)


def chunk_f1(gold, predicted, names):
    """conlleval's F1 over exactly matching chunks."""
    correct = n_gold = n_predicted = 0
    for g, p in zip(gold, predicted):
        gold_chunks, predicted_chunks = chunks(names[g]), chunks(names[p])
        correct += len(gold_chunks & predicted_chunks)
        n_gold += len(gold_chunks)
        n_predicted += len(predicted_chunks)
    precision, recall = correct / max(n_predicted, 1), correct / max(n_gold, 1)
    return 2 * precision * recall / max(precision + recall, 1e-12)


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=1500, help="training sentences")
    parser.add_argument("--test", type=int, default=500, help="held-out sentences")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64, help="nh, hidden units")
    parser.add_argument("--emb-dim", type=int, default=32, help="de, embedding size")
    parser.add_argument("--window", type=int, default=5, help="cs, context window (odd)")
    parser.add_argument("--lr", type=float, default=0.5, help="SGD learning rate")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    vocabulary, label_names = vocabulary_of_task(), labels_of_task()
    word_index = {w: i for i, w in enumerate(vocabulary)}
    label_index = {y: i for i, y in enumerate(label_names)}
    names = np.array(label_names)
    train_set = make_dataset(args.train, rng, word_index, label_index)
    test_set = make_dataset(args.test, rng, word_index, label_index)
    print(f"{len(vocabulary)} words, {len(label_names)} labels, {args.train} training and "
          f"{args.test} held-out sentences")

    model = ElmanSLU(nh=args.hidden, nc=len(label_names), ne=len(vocabulary), de=args.emb_dim,
                     cs=args.window, seed=args.seed)
    gold = [labels for _, labels in test_set]
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        losses = [model.train(words, labels, args.lr)
                  for words, labels in (train_set[i] for i in rng.permutation(len(train_set)))]
        predicted = [model.classify(words) for words, _ in test_set]
        print(f"epoch {epoch}: train loss {np.mean(losses):.4f}, held-out token F1 "
              f"{token_f1(gold, predicted, label_index['O']):.4f}, chunk F1 "
              f"{chunk_f1(gold, predicted, names):.4f} ({time.perf_counter() - start:.1f} s)")
    token, chunk = token_f1(gold, predicted, label_index["O"]), chunk_f1(gold, predicted, names)
    print(f"held-out token F1 = {token:.4f}, chunk F1 = {chunk:.4f}")
    return token, chunk


if __name__ == "__main__":
    main()
