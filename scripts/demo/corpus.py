"""The demo's corpora, test set and Self-Instruct prompts, from a World.

The four prompts are the dataset job's defaults, verbatim (one user message
each, through the chat template). The teacher's corpus holds the world's
facts as questions and answers and, beside them, those four meta-tasks
answered correctly: numbered lists of the world's sub-topics, JSON arrays of
true question/answer pairs and of true multiple-choice questions, and honest
judge scores (high for a right answer, low for a wrong one). The student's
corpus holds only questions and answers, about a part of the facts.

Conversations are packed to the training sequence length: a lead turn (a
meta-task or a question) followed by more question/answer turns until the
next would not fit, so the train job's fixed-length batches carry little
padding. Every lead turn also appears at the start of a conversation,
which is where the dataset job puts it.
"""

import json
import random

from world import KINDS, RUBRIC, SUBTOPICS, KIND_OF_SUBTOPIC

PROMPT_SUBTOPICS = ("Task: {task}\n{description}\nExample request: {seed}\nList {n} distinct "
                    "sub-topics of this task. Answer with a numbered list, one sub-topic per line.")
PROMPT_PAIRS_QA = ("Task: {task}\n{description}\nSub-topic: {subtopic}\nExamples:\n{examples}\n"
                   "Write {n} new question and answer pairs on this sub-topic. Answer with a JSON "
                   "array of objects with the keys \"question\" and \"answer\".")
PROMPT_PAIRS_MC = ("Task: {task}\n{description}\nSub-topic: {subtopic}\nExamples:\n{examples}\n"
                   "Write {n} new multiple-choice questions on this sub-topic. Answer with a JSON "
                   "array of objects with the keys \"question\", \"choices\" (a list of 4 strings) "
                   "and \"answer\" (the index of the correct choice).")
PROMPT_JUDGE = ("Task: {task}\n{description}\nRubric: {rubric}\nQuestion: {question}\nAnswer: "
                "{answer}\nRate the answer from 1 to 10 against the rubric. Reply with \"Score: "
                "N/10\" and one sentence of justification.")


def chat_text(messages, add_generation_prompt=False):
    """Qwen2's simple ChatML template, rendered (bpe.CHAT_TEMPLATE)."""
    s = "".join("<|im_start|>" + m["role"] + "\n" + m["content"] + "<|im_end|>\n" for m in messages)
    return s + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def qa_examples(pairs, with_answers=True):
    out = []
    for q, a in pairs:
        out.append("Q: " + q)
        if with_answers:
            out.append("A: " + a)
    return "\n".join(out)


def mc_examples(items):
    out = []
    for q, ch, ans in items:
        out += ["Q: " + q, "Choices: " + " | ".join(ch), "Answer: " + str(ans)]
    return "\n".join(out)


def subtopics_prompt(task, seed, n):
    return PROMPT_SUBTOPICS.format(task=task["name"], description=task["description"], seed=seed, n=n)


def pairs_prompt(task, subtopic, examples, n, mc=False):
    p = PROMPT_PAIRS_MC if mc else PROMPT_PAIRS_QA
    return p.format(task=task["name"], description=task["description"], subtopic=subtopic,
                    examples=examples, n=n)


def judge_prompt(task, question, answer, rubric=RUBRIC):
    return PROMPT_JUDGE.format(task=task["name"], description=task["description"], rubric=rubric,
                               question=question, answer=answer)


def _n(rng):
    """How many items a prompt asks for: the dataset job's default 5 mostly;
    a small model stops after five more reliably than it counts to n."""
    return 5 if rng.random() < 0.85 else rng.choice([3, 4, 6, 7])


class Builder:
    """Turns (user, assistant) of every kind, drawn with rng over facts."""

    def __init__(self, world, task, facts, rng):
        self.w, self.task, self.rng = world, task, rng
        self.facts = list(facts)
        self.by_kind = {k: [f for f in self.facts if f[0] == k] for k in KINDS}

    def qa(self, fact):
        return self.w.question(fact, self.rng.randrange(2)), self.w.answer(fact)

    def describe(self, subject_type, subject):
        """"Tell me about X." answered with every fact of X: the subject copied
        from the prompt into each sentence, the skill the judge's reply needs."""
        facts = [f for f in self.facts if f[1] == subject]
        self.rng.shuffle(facts)
        what = "the " + subject if subject_type == "creature" else subject
        return f"Tell me about {what}.", " ".join(self.w.describe(*f) for f in facts)

    def subtopics(self):
        r = self.rng
        n = _n(r)
        seed = r.choice(self.task["seed_prompts"])
        # In the world's order: each item only has to come after the one
        # before, which keeps a small model's list free of repeats.
        picks = sorted(r.sample(SUBTOPICS, n), key=SUBTOPICS.index)
        return subtopics_prompt(self.task, seed, n), "\n".join(f"{i + 1}. {s}" for i, s in enumerate(picks))

    def _examples(self, kind, mc):
        """The {examples} block and the facts it shows (not to be repeated)."""
        r = self.rng
        k = r.choice([0, 1, 2, 3, 3, 3])
        src = r.random()
        if src < 0.25:
            seeds = r.sample(self.task["seed_prompts"], k)
            return "\n".join("Q: " + s for s in seeds), set(self.w.parse_question(s) for s in seeds)
        shown = r.sample(self.by_kind[kind], min(k, len(self.by_kind[kind]) - 8))
        if src < 0.4:
            return "\n".join("Q: " + self.qa(f)[0] for f in shown), set(shown)
        if mc:
            items = [(self.w.question(f, r.randrange(2)),) + self.ordered_choices(f) for f in shown]
            return mc_examples(items), set(shown)
        return qa_examples([self.qa(f) for f in shown]), set(shown)

    def ordered_choices(self, fact):
        ch, _ = self.w.choices(fact, self.rng)
        ch.sort(key=self.w.values[KINDS[fact[0]][2]].index)
        return ch, ch.index(self.w.answer(fact))

    def pairs(self, mc=False):
        r = self.rng
        kind = r.choice(list(KINDS))
        examples, shown = self._examples(kind, mc)
        n = _n(r)
        pool = [f for f in self.by_kind[kind] if f not in shown]
        # Subjects in alphabetical order and choices in their list's order,
        # for the same reason as the sub-topics.
        picks = sorted(r.sample(pool, n), key=lambda f: f[1].lower())
        if mc:
            out = []
            for f in picks:
                ch, ans = self.ordered_choices(f)
                out.append({"question": self.w.question(f, r.randrange(2)), "choices": ch, "answer": ans})
        else:
            out = [{"question": q, "answer": a} for q, a in map(self.qa, picks)]
        return pairs_prompt(self.task, KINDS[kind][0], examples, n, mc), json.dumps(out)

    def judge(self):
        """The justification first, then the score: the fact recalled in
        words and the answer quoted beside it, then the verdict (a small
        model cannot recall, compare and score in the one step that writes
        the score's digit; two values side by side it can compare)."""
        r = self.rng
        fact = r.choice(self.facts)
        q, truth = self.qa(fact)
        why = self.w.describe(*fact)[:-1]
        u = r.random()
        if u < 0.5:
            ans = truth if r.random() < 0.8 else self.w.describe(*fact)
            score, verdict = r.choice([9, 10, 10]), "so the answer is correct"
        elif u < 0.9:
            ans = r.choice([v for v in self.w.values[KINDS[fact[0]][2]] if v != truth])
            score, verdict = r.choice([1, 2, 2, 3]), "so the answer is wrong"
        else:
            other = r.choice([k for k in self.w.values if k != KINDS[fact[0]][2]])
            ans = r.choice(["I do not know.", r.choice(self.w.values[other])])
            score, verdict = 1, "so the answer does not answer the question"
        return judge_prompt(self.task, q, ans), f'{why} and the answer says "{ans}", {verdict}.\nScore: {score}/10'


def pack(lead, fill, enc, seq_len):
    """Messages of one conversation: the lead (user, assistant) turn, then
    turns taken from fill (an iterator of (user, assistant)) while the chat
    text stays within seq_len tokens. A lead longer than seq_len is
    returned alone (the train job truncates it); so is any lead when enc
    is None (the tokenizer's own sample, drawn before there is one)."""
    msgs = [{"role": "user", "content": lead[0]}, {"role": "assistant", "content": lead[1]}]
    if enc is None:
        return msgs
    n = len(enc.encode(chat_text(msgs)))
    while True:
        u, a = next(fill)
        turn = [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
        k = len(enc.encode(chat_text(turn)))
        if n + k > seq_len:
            fill.push((u, a))
            return msgs
        msgs += turn
        n += k


class Refill:
    """An endless stream of question/answer turns over facts, each fact once
    per pass in a fresh order, with one-item push-back; with describe > 0,
    that fraction of turns describes a random subject instead."""

    def __init__(self, builder, facts, rng, describe=0.0):
        self.b, self.facts, self.rng, self.back, self.queue = builder, list(facts), rng, [], []
        self.describe = describe
        subj = {f[1] for f in self.facts}
        self.subjects = [(t, s) for t, ss in sorted(builder.w.subjects.items()) for s in ss if s in subj]

    def push(self, item):
        self.back.append(item)

    def __next__(self):
        if self.back:
            return self.back.pop()
        if self.describe and self.rng.random() < self.describe:
            return self.b.describe(*self.rng.choice(self.subjects))
        if not self.queue:
            self.queue = self.facts[:]
            self.rng.shuffle(self.queue)
        return self.b.qa(self.queue.pop())


def teacher_corpus(world, task, enc, seq_len, rounds, mix, seed):
    """rounds x mix = {"subtopics": n, "pairs": n, "mc": n, "judge": n, "qa": n}
    conversations, shuffled; the qa ones lead with a question too."""
    rng = random.Random(seed)
    b = Builder(world, task, world.fact_list, rng)
    fill = Refill(b, world.fact_list, rng, describe=0.15)
    convs = []
    for _ in range(rounds):
        for kind, count in sorted(mix.items()):
            for _ in range(count):
                lead = {"subtopics": b.subtopics, "pairs": b.pairs, "mc": lambda: b.pairs(mc=True),
                        "judge": b.judge, "qa": lambda: next(fill)}[kind]()
                convs.append(pack(lead, fill, enc, seq_len))
    rng.shuffle(convs)
    return convs


def student_corpus(world, task, facts, enc, seq_len, n_convs, seed):
    rng = random.Random(seed)
    b = Builder(world, task, facts, rng)
    fill = Refill(b, facts, rng)
    return [pack(next(fill), fill, enc, seq_len) for _ in range(n_convs)]


def student_facts(world, fraction, seed):
    """The part of the world the student is taught: fraction of each kind."""
    rng = random.Random(seed)
    out = []
    for kind in KINDS:
        fs = world.facts_of(kind)
        out += rng.sample(fs, round(len(fs) * fraction))
    return sorted(out, key=world.fact_list.index)


def test_set(world, seed):
    """One multiple-choice row per fact, in a random one of its phrasings."""
    rng = random.Random(seed)
    rows = []
    for f in world.fact_list:
        ch, ans = world.choices(f, rng)
        rows.append({"prompt": world.question(f, rng.randrange(2)), "choices": ch, "answer": ans,
                     "split": "test", "kind": f[0]})
    return rows


def pairs_dataset(world, n, n_val, seed):
    """A prompt/response dataset of the task, as Self-Instruct would make
    it: n distinct true pairs, the last n_val of them the validation split."""
    rng = random.Random(seed)
    cands = [(f, t) for f in world.fact_list for t in range(2)]
    rows = []
    for i, (f, t) in enumerate(rng.sample(cands, n)):
        row = {"prompt": world.question(f, t), "response": world.answer(f)}
        if i >= n - n_val:
            row["split"] = "validation"
        rows.append(row)
    return rows


def sample_prompts(world, task, seed, count):
    """Filled default prompts for measuring the teacher as a data teacher:
    count of each kind, with {n} = 5 and up to 3 examples as the dataset
    job writes them (seed prompts as Q lines for sub-topics; for pairs the
    seed prompts of the sub-topic or none)."""
    rng = random.Random(seed)
    b = Builder(world, task, world.fact_list, rng)
    out = []
    for i in range(count):
        out.append(("subtopics", subtopics_prompt(task, task["seed_prompts"][i % len(task["seed_prompts"])], 5), None))
    for mc in (False, True):
        for i in range(count):
            st = SUBTOPICS[i % len(SUBTOPICS)]
            kind = KIND_OF_SUBTOPIC[st]
            seeds = [s for s in task["seed_prompts"] if world.parse_question(s)[0] == kind]
            ex = "\n".join("Q: " + s for s in seeds[:3])
            out.append(("mc" if mc else "qa", pairs_prompt(task, st, ex, 5, mc), st))
    for i in range(count):
        f = rng.choice(world.fact_list)
        q, truth = b.qa(f)
        right = i % 2 == 0
        ans = truth if right else rng.choice([v for v in world.values[KINDS[f[0]][2]] if v != truth])
        out.append(("judge", judge_prompt(task, q, ans), {"question": q, "answer": ans, "right": right}))
    return out
