"""The texts of the realistic workloads: English prose assembled from fixed phrase lists by a
generator seeded with ``--seed`` and what the text is for, so a seed gives the same texts on
every machine, in every run and for both servers of an ``--against`` run.

Lengths are asked for in tokens and built in words: tokens are estimated as words ×
:data:`TOKENS_PER_WORD` (1.2). SmolLM2's tokenizer (49k entries) gives 1.18 to 1.21 tokens a
word on these texts; tokenizers with larger vocabularies give a little fewer. The server's own
``prompt_tokens`` says what it really counted.
"""

from __future__ import annotations

import functools
import random
from typing import Any

TOKENS_PER_WORD = 1.2


def words_for(tokens: int) -> int:
    """The words of prose that make about ``tokens`` tokens."""
    return max(1, round(tokens / TOKENS_PER_WORD))


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` is: its words × 1.2."""
    return round(len(text.split()) * TOKENS_PER_WORD)


def generator(seed: int, *key: object) -> random.Random:
    """A generator of its own for each text: seeded with a string, which Python hashes the same
    way in every process (unlike ``hash``)."""
    return random.Random(":".join(str(part) for part in (seed, *key)))


_SUBJECTS = (
    "The warehouse team",
    "Our billing system",
    "The mobile app",
    "Each regional office",
    "The night shift",
    "The delivery partner",
    "The support desk",
    "The new supplier",
    "The audit committee",
    "A field engineer",
    "The returns department",
    "The loyalty programme",
    "The finance team",
    "Every store manager",
    "The quality inspector",
    "The customer portal",
)
_VERBS = (
    "reviews",
    "updates",
    "confirms",
    "reports",
    "schedules",
    "checks",
    "records",
    "approves",
    "replaces",
    "tracks",
    "publishes",
    "collects",
    "cancels",
    "refunds",
    "inspects",
    "forwards",
)
_OBJECTS = (
    "the shipping labels",
    "every refund request",
    "the stock levels",
    "the service contracts",
    "the open tickets",
    "damaged parcels",
    "the weekly invoices",
    "customer addresses",
    "the spare parts list",
    "warranty claims",
    "the price changes",
    "late deliveries",
    "the safety checklist",
    "gift card balances",
    "the cleaning rota",
    "supplier certificates",
)
_TAILS = (
    "before the end of each month",
    "when a parcel is more than three days late",
    "after the morning meeting",
    "within two working days",
    "unless a manager says otherwise",
    "for orders above {n} euros",
    "in the northern region",
    "on the first Monday of the quarter",
    "whenever a customer asks for it in writing",
    "and keeps a copy for {n} days",
    "before any order leaves the building",
    "during the seasonal sale",
    "with help from the regional lead",
    "if the tracking number is missing",
    "at most {n} times a year",
    "as soon as the payment clears",
)


def sentence(rng: random.Random) -> str:
    """One sentence of about a dozen words from the phrase lists."""
    tail = rng.choice(_TAILS).format(n=rng.randint(2, 400))
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {tail}."


def prose(rng: random.Random, words: int, per_paragraph: int = 6) -> str:
    """Sentences of as near ``words`` words in all as whole sentences come (at least one), in paragraphs."""
    sentences: list[str] = []
    count = 0
    while True:
        following = sentence(rng)
        size = len(following.split())
        if sentences and count + size / 2 > words:
            break
        sentences.append(following)
        count += size
    return "\n\n".join(" ".join(sentences[i : i + per_paragraph]) for i in range(0, len(sentences), per_paragraph))


_INTRO = (
    "You are the assistant of Harbor & Finch, an online shop for home and outdoor goods. Answer "
    "customers politely and briefly, in the language they write in. When tools are offered, use them "
    "when a question needs an order's status, a product search or a ticket for the support team. Never invent "
    "order numbers, prices or delivery dates. The shop's guidelines follow; they describe how the "
    "teams work, so that you can explain what happens next."
)


@functools.cache
def system_prompt(seed: int, words: int) -> str:
    """An assistant's instructions of about ``words`` words: a fixed introduction, then guidelines."""
    rest = max(words - len(_INTRO.split()) - 1, 1)  # 1: the heading
    return f"{_INTRO}\n\nGuidelines:\n\n{prose(generator(seed, 'system', words), rest)}"


_ITEMS = ("hiking boots", "a garden bench", "two lamps", "a tent", "kitchen knives", "a rain jacket", "bed linen", "a coffee grinder")
_PROBLEMS = (
    "it arrived with a broken part",
    "it has not arrived yet",
    "I was charged twice",
    "the size is wrong",
    "the colour differs from the photo",
    "the box was opened",
)
_ASKS = (
    "What should I do now?",
    "Can you help me sort this out?",
    "How long will this take to fix?",
    "Is there a way to get a refund?",
)
_FOLLOW_UPS = (
    "Thanks. How long does a replacement usually take to arrive?",
    "Okay. Do I need to send the item back first, and who pays for the postage?",
    "Can you summarize what you just told me in three short steps?",
    "What happens if I am not at home when the courier comes?",
    "Could I get store credit instead of a refund, and is it worth more?",
    "Is there anything I should photograph before I pack it?",
    "Thanks, and can the support team call me rather than email?",
    "What if the same problem happens again with the new one?",
)


def opening(seed: int, user: int) -> str:
    """A user's first message: a problem with an order, tagged with the user's number so that no
    two conversations share more than the system prompt."""
    rng = generator(seed, "user", user)
    day = rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"))
    return (
        f"(user {user}) Hello, I ordered {rng.choice(_ITEMS)} on {day}, order {rng.randint(10000, 99999)}, "
        f"and {rng.choice(_PROBLEMS)}. {rng.choice(_ASKS)}"
    )


def follow_up(seed: int, user: int, turn: int) -> str:
    """A user's message at ``turn`` (2 and later) of the conversation."""
    return generator(seed, "user", user, turn).choice(_FOLLOW_UPS)


_TOPICS = (
    "the delivery time to {place}",
    "returning {item} after {n} days",
    "the warranty on {item}",
    "paying for {item} in instalments",
    "whether {item} is in stock in {place}",
    "the price of shipping {item} to {place}",
    "changing the address of order {order}",
    "the status of order {order}",
)
_PLACES = ("Lisbon", "Oslo", "Vienna", "Dublin", "Lyon", "Krakow", "Ghent", "Turin")


def question(seed: int, index: int) -> str:
    """A short customer question, numbered."""
    rng = generator(seed, "question", index)
    topic = rng.choice(_TOPICS).format(
        place=rng.choice(_PLACES), item=rng.choice(_ITEMS), n=rng.randint(10, 90), order=rng.randint(10000, 99999)
    )
    return f"({index}) {rng.choice(('Could you tell me about', 'I have a question about', 'What can you say about'))} {topic}?"


def documents(seed: int, index: int, words: int, count: int = 6) -> str:
    """``count`` passages of about ``words`` words in all, each under a title of the request's
    own, so that two requests share only the instruction above them."""
    rng = generator(seed, "documents", index)
    per = max(words // count, 1)
    return "\n\n".join(f"Document {d + 1} (ref {index}-{d + 1}):\n{prose(rng, per)}" for d in range(count))


TOOLS: tuple[dict[str, Any], ...] = (
    {
        "type": "function",
        "function": {
            "name": "get_order_status",
            "description": "Look up an order: where it is, when it ships and when it should arrive.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "description": "The order number, five digits."}},
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_products",
            "description": "Search the catalogue by words, optionally within a category, best matches first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What the customer is looking for."},
                    "category": {"type": "string", "enum": ["garden", "kitchen", "outdoor", "bedroom", "lighting"]},
                    "max_results": {"type": "integer", "minimum": 1, "maximum": 20},
                },
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_support_ticket",
            "description": "Open a ticket for the support team when a customer needs a person to act.",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "subject": {"type": "string", "description": "One line."},
                    "details": {"type": "string"},
                    "priority": {"type": "string", "enum": ["low", "normal", "urgent"]},
                },
                "required": ["subject", "details"],
            },
        },
    },
)
