#!/usr/bin/env python3
"""Writes tokenizer_corpus.jsonl: one JSON string per line, the texts the
tokenizer is compared with the reference on (tests/integration/tokenizer*.test.mjs).
Hand-picked lines first, then lines mixed at random (fixed seed) from
fragments that stress the split regexes, normalizers and added tokens.
Run from anywhere: python3 tests/reference/make_tokenizer_corpus.py"""
import json
import os
import random

HAND = [
    "",
    "Hello World",
    "Hello world! How are you doing today?",
    " leading space",
    "  two leading spaces",
    "trailing spaces   ",
    "   ",
    "\t",
    "\n",
    "\n\n\n",
    "a\tb\t\tc",
    "line one\nline two\r\nline three\rend",
    "spaces    between     words\n\n    indented\n\t\ttabbed",
    "I'm sure you'll see they've done it, don't you? We'd, she's, it's, I'LL, YOU'RE, He'S",
    "'s 't 're 've 'm 'll 'd",
    "1234567890123456789012345678901234567890",
    "3.14159265358979 2.71828 -42 +7 1e-10 0x1F 0b1011 1,000,000.00 $19.99 50% 12:30",
    "Phone: +1 (555) 123-4567, ZIP 90210, year 2024.",
    "int main(void) {\n    printf(\"hello, %s\\n\", argv[1]);\n    return 0;\n}",
    "def f(x):\n    if x <= 0:\n        return []\n    return [i ** 2 for i in range(x)]  # squares\n",
    "{\"key\": [1, 2, {\"nested\": null}], \"emoji\": \"\\u263A\"}",
    "<div class=\"a\"><p>Text &amp; more</p></div>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "https://example.com/path?query=1&x=y#frag user@example.org",
    "中文测试：你好，世界！这是一个句子。",
    "日本語のテキスト、カタカナとひらがな。漢字も。",
    "한국어 텍스트입니다. 안녕하세요!",
    "العربية: مرحبا بالعالم، كيف حالك؟",
    "हिन्दी: नमस्ते दुनिया, आप कैसे हैं?",
    "Русский текст: Привет, мир! Ёжик.",
    "Ελληνικά: Γειά σου Κόσμε",
    "ภาษาไทย สวัสดีชาวโลก",
    "עברית: שלום עולם",
    "Tiếng Việt: Xin chào thế giới, điều đó thật tuyệt.",
    "Deutsch: Größe, Übermäßig, Straße. Français: déjà vu, garçon, naïve, Noël.",
    "Türkçe: İstanbul, ığdır, şişe.",
    "emoji 😀😃😄 👍🏽 ❤️ 🇺🇸🇯🇵 1️⃣",
    "family ZWJ: 👨‍👩‍👧‍👦 and 🏳️‍🌈 and 👩🏾‍💻",
    "combining: é ä ñ vs é ä ñ",
    "nbsp: here, thin space, ideographic　space, zero​width",
    "!!!!!!!!???......----____====****",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "MiXeD CaSe WoRdS and ALLCAPS and lowercase",
    "math: ∑ᵢ xᵢ² ≤ ∞, ∀ε>0 ∃δ, √2 ≈ 1.414, π ≠ 3",
    "control\u0001chars\u0007here",
    "<|begin_of_text|>Hello<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "text <s> with </s> sentencepiece <unk> specials",
    "<s>[INST] Hi there [/INST] Hello!</s>",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "not special: <|not_a_token|> <s > < s> <|eot_id",
    "x<|eot_id|>y<|eot_id|><|eot_id|>z",
    "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. ",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.\n\nUt enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.",
    "mixed 中文and English混合text 123数字",
    "￥€£¥₹₽ currency ¢ §¶ ©®™",
    "  \n  \t \n",
    "ending with newline\n",
    "~`@#^&*()_+-=[]{}|;:'\",.<>/?\\"
]

FRAGMENTS = [
    "hello", "World", "don't", "WE'LL", "it's", "'S", "'ll", "x", "ab", "naïve", "Straße", "ΣΟΦΟΣ", "ΟΔΟΣ.",
    "İstanbul", "ǅemal", "中文", "日本語", "한국어", "مرحبا", "नमस्ते", "Привет", "ไทย", "שלום", "😀", "👍🏽",
    "👨‍👩‍👧‍👦", "🇺🇸", "1️⃣", "e\u0301", "\u00a0", "\u200b", "\u3000", "\u2028", "\ufeff", "½", "²", "Ⅻ",
    "ﬁ", "①", "０１２", "Ａｂｃ", "<|begin_of_text|>", "<|eot_id|>", "<s>", "</s>", "<unk>", "<|im_start|>",
    "<|im_end|>", "<|endoftext|>", "<tool_call>", "<", "|", ">", "<|", "|>", "[INST]", "<<SYS>>", "\\n",
    "(", ")", "{", "}", "[", "]", ";", ":", ",", ".", "...", "!", "?", "-", "_", "=", "==", "=>", "->",
    "#", "$", "%", "&", "*", "/", "//", "\\", "'", '"', "`", "~", "^", "@", "+", "0", "7", "42", "123",
    "1234", "99999", "3.14", "1,000", "0x7f", "1e9", "int", "def", "return", "\tcode", "    indent",
]
SPACES = ["", " ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t", "        "]


def random_lines(n, seed=20261122):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 24)):
            parts.append(rng.choice(FRAGMENTS))
            parts.append(rng.choice(SPACES))
        out.append("".join(parts))
    return out


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer_corpus.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for line in HAND + random_lines(200):
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
