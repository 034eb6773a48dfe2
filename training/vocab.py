#!/usr/bin/python3
# A small CLIP-format BPE vocabulary (vocab.json + merges.txt) for the generated scenes, and
# the tokenizer that training uses, which must give the same ids as the C runtime's.
"""Tokenizer vocabulary for the scene data, in CLIP's byte-level BPE format.

The vocabulary is what CLIP's would be with far fewer merges: the 256 byte symbols, the
same 256 with "</w>", BPE merges learned on the data's words until every word is one
token, then <|startoftext|> and <|endoftext|> (the last two ids). Words outside the data
still tokenize, byte by byte.

  vocab = vocab.build()              # Vocabulary over scenes.all_words()
  vocab.tokenize("a red circle", 24) # [start, a</w>, red</w>, circle</w>, end, 0, ...]
  vocab.write(DIR)                   # DIR/vocab.json, DIR/merges.txt
  vocab.py --out DIR                 # the same from the command line
"""

import argparse
import html
import json
import os
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
WORD_END = "</w>"


def byte_symbols():
    """CLIP's reversible byte -> printable character map, in CLIP's vocabulary order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    order, chars, extra = printable[:], printable[:], 0
    for b in range(256):
        if b not in printable:
            order.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(order, [chr(c) for c in chars]))


BYTE_SYMBOLS = byte_symbols()


def _word_symbols(word):
    symbols = [BYTE_SYMBOLS[b] for b in word.encode("utf-8")]
    symbols[-1] += WORD_END
    return symbols


def _merge_pair(symbols, pair):
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            merged.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


def learn_merges(words):
    """BPE merges, most frequent pair first (ties: first seen), until each word is one token."""
    state = {w: _word_symbols(w) for w in words}
    merges = []
    while True:
        counts = {}
        for symbols in state.values():
            for pair in zip(symbols, symbols[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            return merges
        best = max(counts.items(), key=lambda item: item[1])[0]
        merges.append(best)
        state = {w: _merge_pair(s, best) for w, s in state.items()}


def _clean(text):
    text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


def _pieces(text):
    """CLIP's pre-tokenizer: special tokens, contractions, letter runs, single numbers,
    runs of anything else that is not a space."""
    pieces, at = [], 0
    while at < len(text):
        ch = text[at]
        if ch.isspace():
            at += 1
            continue
        for literal in (START_TOKEN, END_TOKEN, "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if text.startswith(literal, at):
                pieces.append(literal)
                at += len(literal)
                break
        else:
            category = unicodedata.category(ch)[0]
            end = at + 1
            if category == "L":
                while end < len(text) and unicodedata.category(text[end])[0] == "L":
                    end += 1
            elif category != "N":
                while (end < len(text) and not text[end].isspace()
                       and unicodedata.category(text[end])[0] not in "LN"):
                    end += 1
            pieces.append(text[at:end])
            at = end
    return pieces


class Vocabulary:
    def __init__(self, merges):
        self.merges = list(merges)
        self.rank = {pair: i for i, pair in enumerate(self.merges)}
        tokens = list(BYTE_SYMBOLS.values()) + [s + WORD_END for s in BYTE_SYMBOLS.values()]
        tokens += ["".join(pair) for pair in self.merges]
        self.encoder = {}
        for token in tokens:
            self.encoder.setdefault(token, len(self.encoder))
        self.encoder[START_TOKEN] = len(self.encoder)
        self.encoder[END_TOKEN] = len(self.encoder)
        self.start_id = self.encoder[START_TOKEN]
        self.end_id = self.encoder[END_TOKEN]

    def __len__(self):
        return len(self.encoder)

    def _bpe(self, word):
        symbols = _word_symbols(word)
        while len(symbols) > 1:
            ranked = [(self.rank[p], p) for p in zip(symbols, symbols[1:]) if p in self.rank]
            if not ranked:
                break
            symbols = _merge_pair(symbols, min(ranked)[1])
        return symbols

    def encode(self, text):
        """Ids of the text without the start and end tokens."""
        ids = []
        for piece in _pieces(_clean(text)):
            if piece in (START_TOKEN, END_TOKEN):
                ids.append(self.encoder[piece])
            else:
                ids.extend(self.encoder[s] for s in self._bpe(piece))
        return ids

    def tokenize(self, text, context_length):
        """[start, ids..., end, 0, ...] of exactly context_length ids, truncated keeping the
        end token (as the runtime does)."""
        ids = [self.start_id] + self.encode(text)[:context_length - 2] + [self.end_id]
        return ids + [0] * (context_length - len(ids))

    def write(self, out_dir):
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(self.encoder, f, ensure_ascii=False)
        with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            for left, right in self.merges:
                f.write("%s %s\n" % (left, right))


def build(words=None):
    """The vocabulary for words (default: every word of the scenes); checks that each word
    comes out of CLIP's BPE as a single token."""
    words = list(words) if words is not None else scenes.all_words()
    vocab = Vocabulary(learn_merges(words))
    for word in words:
        if len(vocab.encode(word)) != 1:
            raise ValueError("word %r is not a single token: %s" % (word, vocab._bpe(word)))
    return vocab


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for vocab.json and merges.txt")
    parser.add_argument("texts", nargs="*", help="texts to tokenize and print")
    args = parser.parse_args()
    vocab = build()
    vocab.write(args.out)
    print("%d tokens, %d merges" % (len(vocab), len(vocab.merges)))
    for text in args.texts:
        print(json.dumps({"text": text, "tokens": [vocab.start_id] + vocab.encode(text)
                          + [vocab.end_id]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
