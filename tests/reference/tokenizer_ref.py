# Reference CLIP byte-level BPE tokenizer in plain Python (standard library only), written
# independently of src/tokenizer.c; it generates tests/data/tokenizer_cases.json.
"""CLIP tokenizer reference (OpenAI simple_tokenizer behaviour).

Usage as a module:
    tok = tokenizer_ref.load("bpe_simple_vocab_16e6.txt.gz")
    tok.encode("a photo of a cat")     # [320, 1125, 539, 320, 2368]
    tok.tokenize("a photo of a cat")   # [49406, 320, ..., 49407, 0, 0, ...], 77 ids

Regenerate the test cases (from the repository root):
    /usr/bin/python3 tests/reference/tokenizer_ref.py --write
(the vocabulary is read from ../shared/data/clip-bpe/ unless --bpe names another file;
texts given as arguments are tokenized and printed)

Cleaning differs from OpenAI's in one way on purpose: ftfy is not available, so of its
fix_text only the two steps that change everyday captions are applied (curly quotes to
straight ones, NFC). Both this file and src/tokenizer.c do exactly the same.
"""

import argparse
import gzip
import html
import json
import os
import sys
import unicodedata

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
N_MERGES = 49152 - 256 - 2
CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def bytes_to_unicode():
    """CLIP's reversible map from bytes to printable characters, in vocabulary order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    byte_values = printable[:]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            byte_values.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(byte_values, [chr(c) for c in chars]))


def is_space(ch):
    # Python's str.isspace(), which is what re's \s means for the cleaned text.
    return ch.isspace()


def is_letter(ch):
    return unicodedata.category(ch).startswith("L")


def is_number(ch):
    return unicodedata.category(ch).startswith("N")


def fold_equal(ch, lit):
    # The CLIP pattern is compiled with IGNORECASE; after lower-casing, the only
    # character still folding onto one of the pattern's letters is LONG S.
    return ch == lit or (ch == "\u017f" and lit == "s")


def match_literal(text, pos, literal):
    if pos + len(literal) > len(text):
        return False
    return all(fold_equal(text[pos + i], literal[i]) for i in range(len(literal)))


def split_pieces(text):
    """CLIP's pattern, scanned by hand:
    <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"""
    pieces = []
    pos = 0
    n = len(text)
    while pos < n:
        ch = text[pos]
        if is_space(ch):
            pos += 1
            continue
        matched = None
        for special in (START_TOKEN, END_TOKEN):
            if match_literal(text, pos, special):
                matched = len(special)
                break
        if matched is None and ch == "'":
            for c in CONTRACTIONS:
                if match_literal(text, pos + 1, c):
                    matched = 1 + len(c)
                    break
        if matched is None:
            end = pos + 1
            if is_letter(ch):
                while end < n and is_letter(text[end]):
                    end += 1
            elif not is_number(ch):
                while end < n and not (is_space(text[end]) or is_letter(text[end])
                                       or is_number(text[end])):
                    end += 1
            matched = end - pos
        pieces.append(text[pos:pos + matched])
        pos += matched
    return pieces


def uncurl_quotes(text):
    # ftfy's uncurl_quotes: U+02BC and U+2018..U+201B to ', U+201C..U+201F to ".
    out = []
    for ch in text:
        code = ord(ch)
        if code == 0x02BC or 0x2018 <= code <= 0x201B:
            out.append("'")
        elif 0x201C <= code <= 0x201F:
            out.append('"')
        else:
            out.append(ch)
    return "".join(out)


def clean(text):
    text = unicodedata.normalize("NFC", uncurl_quotes(text))
    text = html.unescape(html.unescape(text))
    text = text.strip()
    text = " ".join(text.split())
    return text.lower()


class Tokenizer:
    def __init__(self, merges):
        byte_encoder = bytes_to_unicode()
        self.byte_encoder = byte_encoder
        vocab = list(byte_encoder.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += [START_TOKEN, END_TOKEN]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.vocab_size = len(vocab)
        self.start_id = self.encoder[START_TOKEN]
        self.end_id = self.encoder[END_TOKEN]
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            best = None
            best_rank = None
            for pair in zip(word, word[1:]):
                rank = self.ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = pair, rank
            if best is None:
                break
            merged = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[token] = word
        return word

    def encode(self, text):
        ids = []
        for piece in split_pieces(clean(text)):
            if piece in (START_TOKEN, END_TOKEN):
                ids.append(self.encoder[piece])
                continue
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[symbol] for symbol in self.bpe(mapped))
        return ids

    def tokenize(self, text, context_length=77):
        ids = [self.start_id] + self.encode(text) + [self.end_id]
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = self.end_id
        return ids + [0] * (context_length - len(ids))


def load(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:N_MERGES + 1]]
    return Tokenizer(merges)


# Each case is chosen to exercise one rule; the comments say which.
CASES = [
    "a photo of a cat",                                  # the known answer
    "A Photo Of A CAT",                                  # lower-casing
    "a diagram",
    "the quick brown fox jumps over the lazy dog",
    "Hello, world!!! How are you?",                       # punctuation runs
    "...--- ??? (parentheses) [brackets] {braces}",
    "I have 3 cats and 1024 dogs, 3.14159",              # each digit separate
    "call 555-0199 at 10:30pm",
    "it's, don't, we're, they've, I'm, you'll, he'd",    # contractions
    "IT'S DON'T WE'RE",
    "'sun 'tis 'rex 'mmm 'llama 'dd ''s x's",             # contraction at piece start only
    "don\u2019t \u201cquoted\u201d",                        # curly quotes straightened
    "fish &amp; chips &lt;b&gt; &quot;quoted&quot; &apos;s",   # named entities
    "&amp;amp; twice &amp;lt;",                           # unescaped twice
    "&#65;&#x42;&#X63; &#8364; &#128; &#0; &#x1F600;",    # numeric, cp1252 and U+FFFD
    "caf&eacute; &copy; 2024 &nbsp;non&nbsp;breaking &unknown; &ampfoo AT&T",
    "&#9;tab &#10;newline &#xD800; &#1114112; &#11;",     # entity to space, bad code points
    "  multiple   spaces\tand\ttabs\nand\r\nnewlines  ",   # whitespace collapse
    "\u00a0\u2003wide\u3000spaces\u2028here\u0085",
    "café naïve résumé Ångström Œuvre",                  # accented Latin
    "cafe\u0301 composed by NFC",
    "Σίσυφος ΟΔΥΣΣΕΥΣ αβγ Σ",                           # Greek, final sigma
    "東京タワーの写真",                                    # CJK
    "한국어 텍스트",
    "a photo of a 🐱 and 👩‍👩‍👧 with ❤️",                    # emoji, ZWJ, variation selector
    "emoji🎉🎉🎉party",
    "<|startoftext|>inside<|endoftext|> text",            # special tokens in the text
    "!<|endoftext|>",
    "snake_case CamelCase kebab-case e-mail@example.com",
    "x² ½ ⅓ Ⅻ ٣",                                        # other number categories
    "İstanbul ǅemal",                                    # multi-char and title-case lower
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "",                                                  # empty string
    "   ",
    # truncation to 77 ids, keeping the end id
    " ".join(["a photo of a very long caption number %d" % i for i in range(12)]),
    "pneumonoultramicroscopicsilicovolcanoconiosis " * 20,
]


# A 10^5-letter word: the C tokenizer's BPE must stay near-linear on it (a rescan per merge
# took minutes). Periodic, so that this O(rounds x n) reference stays quick.
LONG_WORD_BLOCK = "pneumonoultramicroscopicsilicovolcanoconiosis"
LONG_WORD_LETTERS = 100000


def long_word():
    repeats = LONG_WORD_LETTERS // len(LONG_WORD_BLOCK) + 1
    return (LONG_WORD_BLOCK * repeats)[:LONG_WORD_LETTERS]


def long_word_text(tok):
    case = {"block": LONG_WORD_BLOCK, "letters": LONG_WORD_LETTERS,
            "tokens": tok.encode(long_word())}
    return json.dumps(case) + "\n"


def cases_text(tok):
    cases = [{"text": text, "tokens": tok.tokenize(text)} for text in CASES]
    return "[\n" + ",\n".join(json.dumps(case, ensure_ascii=False) for case in cases) + "\n]\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_bpe = os.path.join(here, "..", "..", "..", "shared", "data", "clip-bpe",
                               "bpe_simple_vocab_16e6.txt.gz")
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bpe", default=default_bpe, help="bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--write", action="store_true",
                        help="regenerate tests/data/tokenizer_cases.json")
    parser.add_argument("--check", action="store_true",
                        help="fail when tests/data/tokenizer_cases.json is out of date")
    parser.add_argument("text", nargs="*", help="texts to tokenize and print")
    args = parser.parse_args()
    if not os.path.exists(args.bpe):
        print("SKIP: %s not found" % args.bpe, file=sys.stderr)
        return 77
    tok = load(args.bpe)
    cases_path = os.path.normpath(os.path.join(here, "..", "data", "tokenizer_cases.json"))
    long_path = os.path.normpath(os.path.join(here, "..", "data", "tokenizer_long_word.json"))
    if args.write:
        with open(cases_path, "w", encoding="utf-8") as f:
            f.write(cases_text(tok))
        with open(long_path, "w", encoding="utf-8") as f:
            f.write(long_word_text(tok))
        print("wrote %d cases to %s and the long word to %s" % (len(CASES), cases_path, long_path))
    if args.check:
        for path, text in ((cases_path, cases_text(tok)), (long_path, long_word_text(tok))):
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    print("%s is out of date: run %s --write" % (path, sys.argv[0]),
                          file=sys.stderr)
                    return 1
    for text in args.text:
        ids = tok.tokenize(text)
        # The text may itself hold <|endoftext|>: cut after the last one.
        print(json.dumps(ids[:len(ids) - ids[::-1].index(tok.end_id)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
