"""The five kinds of user input stage 1 asks Gemini for, and the request text for one batch of them.

The categories span what people type into a search box and what they type into a chat assistant, because
revprompt has to reconstruct both. Each batch also names a topic area, chosen by batch number, so that
thousands of batches do not keep returning the same popular prompts (dedup would throw them away).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    key: str
    title: str
    definition: str
    examples: tuple[str, ...]
    # Rough output size, for the cost estimate: tokens per prompt.
    avg_tokens: int


CATEGORIES: tuple[Category, ...] = (
    Category(
        key="mid_tail_query",
        title="mid-tail search query",
        definition=(
            "a search-engine query of 2 to 4 words that is more specific than a head term but still common; "
            "typed in lower case, no punctuation, the way people really search"
        ),
        examples=("best budget espresso machine", "python list comprehension", "symptoms of low iron"),
        avg_tokens=6,
    ),
    Category(
        key="long_tail_query",
        title="long-tail multi-faceted search query",
        definition=(
            "a search-engine query of 5 to 12 words combining several facets (audience, constraint, location, "
            "budget, comparison, time) the way people really type them, often without punctuation"
        ),
        examples=(
            "waterproof hiking boots for wide feet women under 150",
            "how to refinance student loans with bad credit as a nurse",
        ),
        avg_tokens=14,
    ),
    Category(
        key="simple_prompt",
        title="simple single-faceted prompt",
        definition="a one-sentence request to an AI assistant that asks for exactly one thing, with no extra context",
        examples=("Explain what a mortgage escrow account is.", "Write a haiku about autumn rain."),
        avg_tokens=14,
    ),
    Category(
        key="typical_prompt",
        title="typical prompt",
        definition=(
            "what most people type to an AI chat assistant: one to three sentences, a request with a little "
            "context or a constraint"
        ),
        examples=(
            "I'm planning a 3-day trip to Lisbon in March. What should I not miss, and is it rainy then?",
            "Can you rewrite this sentence so it sounds more professional: we cant make the deadline sorry.",
        ),
        avg_tokens=40,
    ),
    Category(
        key="detailed_prompt",
        title="detailed multi-faceted prompt",
        definition=(
            "a paragraph-long request to an AI assistant with several requirements at once: goal, audience, "
            "format, length, tone, constraints or supplied material"
        ),
        examples=(
            "Write a 600-word blog post for first-time home buyers in Texas explaining closing costs. Use a "
            "friendly tone, include a bulleted checklist, avoid jargon, and end with three questions to ask a lender.",
        ),
        avg_tokens=150,
    ),
)

BY_KEY = {c.key: c for c in CATEGORIES}

# Topic areas rotated across batches (batch_no modulo the list) to spread prompts over the whole space.
TOPICS: tuple[str, ...] = (
    "personal finance and budgeting",
    "investing and retirement",
    "taxes and accounting",
    "small business",
    "marketing and SEO",
    "careers and job hunting",
    "software development",
    "data science and AI",
    "IT support and gadgets",
    "cybersecurity and privacy",
    "home improvement and DIY",
    "gardening",
    "cooking and recipes",
    "nutrition and diets",
    "fitness and sport",
    "physical health and symptoms",
    "mental health and wellbeing",
    "parenting and children",
    "relationships and dating",
    "pets and animals",
    "travel and holidays",
    "cars and transport",
    "real estate and renting",
    "law and consumer rights",
    "education and studying",
    "mathematics",
    "physics and chemistry",
    "biology and medicine",
    "history",
    "geography and cultures",
    "politics and government",
    "philosophy and ethics",
    "religion and spirituality",
    "languages and grammar",
    "creative writing and poetry",
    "books and literature",
    "film, TV and music",
    "video games",
    "art, design and photography",
    "fashion and beauty",
    "weddings and events",
    "shopping and product comparisons",
    "environment and climate",
    "energy and utilities",
    "science news and space",
    "sports fans and teams",
    "hobbies and crafts",
    "local services and trades",
    "insurance",
    "healthcare systems and insurance",
    "startups and entrepreneurship",
    "productivity and tools",
    "writing emails and documents",
    "customer service and complaints",
    "agriculture and food production",
    "manufacturing and engineering",
    "economics",
    "social media",
    "home appliances and repair",
    "outdoor activities",
)


def topic_for(batch_no: int, topics: tuple[str, ...] | list[str] = TOPICS) -> str:
    return topics[batch_no % len(topics)]


SYSTEM_INSTRUCTION = (
    "You write realistic inputs that real people type into search engines and AI assistants, for building a "
    "dataset. Each item must be something a real person would plausibly write, self-contained, and different "
    "from every other item in wording and intent. Never number items or add commentary."
)

# Gemini's structured-output schema (OpenAPI subset): one object holding the list of prompts.
RESPONSE_SCHEMA = {
    "type": "OBJECT",
    "properties": {"prompts": {"type": "ARRAY", "items": {"type": "STRING"}}},
    "required": ["prompts"],
}


def batch_request(category: Category, n: int, topic: str) -> str:
    """The user turn for one stage-1 call: `n` prompts of one category about one topic area."""
    examples = "\n".join(f"- {e}" for e in category.examples)
    return (
        f"Write exactly {n} distinct items of this kind: {category.title}.\n"
        f"Definition: {category.definition}.\n"
        f"Examples of the style (do not reuse them):\n{examples}\n"
        f"Topic area for this batch: {topic}. Spread the items over many different sub-topics, intents "
        f"(informational, how-to, comparison, commercial, creative, troubleshooting) and kinds of people.\n"
        f'Answer with a JSON object {{"prompts": [...]}} holding exactly {n} strings.'
    )
