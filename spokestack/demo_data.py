"""The demo's fixed data, importable without Django (the launcher prints it)."""

from __future__ import annotations

from dataclasses import dataclass

DEMO_PASSWORD = "spokestack-demo"  # noqa: S105 - the local demo's documented password
PLATFORM_HOST = "localhost"
PLATFORM_ADMIN = "platform@spokestack.localhost"


@dataclass(frozen=True)
class DemoInstance:
    schema: str
    name: str
    host: str
    tier: str
    region: str
    language: str
    timezone: str
    clients: tuple[tuple[str, str, str, str], ...]  # name, vertical, region, language
    demo_agent: str = "copy"
    demo_task: str = ""

    @property
    def admin_email(self) -> str:
        return f"admin@{self.host}"


DEMO_INSTANCES = (
    DemoInstance("alpha", "Agency Alpha", "alpha.localhost", "enterprise", "GCC", "ar", "Asia/Dubai",
                 (("Desert Bloom Cosmetics", "beauty", "GCC", "ar"), ("Gulf Bank", "finance", "GCC", "en")),
                 "copy", "Write three Instagram captions for Desert Bloom's Ramadan glow collection following the brand "
                 "guidelines, and check them against the brand rules before saving the best one as a draft."),
    DemoInstance("beta", "Agency Beta", "beta.localhost", "professional", "EU", "en", "Europe/London",
                 (("Thames Outfitters", "fashion", "EU", "en"), ("Covent Kitchen", "food", "EU", "en")),
                 "brief", "Create a creative brief for Thames Outfitters' autumn outerwear launch in the UK."),
    DemoInstance("gamma", "Agency Gamma", "gamma.localhost", "professional", "US", "en", "America/New_York",
                 (("Hudson Cloud", "technology", "US", "en"), ("Brooklyn Health", "healthcare", "US", "en")),
                 "media_buying", "Recommend a bid strategy and forecast a $50,000 budget for Hudson Cloud's Q1 "
                 "lead-generation campaign, then save the plan."),
)

# `make run` also runs the catalogue's newer agents once each (issue #19), for the instance's first
# client: the proposal orchestrator (its four child runs stream inside its own stream), and one run
# of each of content, commercial, resource and publisher. (agent type, task)
DEMO_CATALOGUE_RUNS = {
    "alpha": (("proposal", "Answer Desert Bloom Cosmetics' RFP for its Ramadan 2027 campaign in the UAE and Saudi "
                           "Arabia: an integrated bilingual campaign, 3 hero videos and 8 weeks of social content, "
                           "budget AED 1.2m, proposals due 2026-12-20, evaluated on creative approach 40%, "
                           "experience 25%, team 20% and price 15%."),
              ("commercial", "Check the rate card and estimate the effort for 3 hero videos and 20 social posts for "
                             "Desert Bloom's Ramadan campaign, then compare the estimate to the client's budget.")),
    "beta": (("content", "Write a 600-word blog article for Thames Outfitters on caring for a waxed jacket this "
                         "winter, following the content calendar and the channel specs, and check its readability."),
             ("resource", "Find who is available for 20 hours a week of copywriting from 4 January 2027 for "
                          "Thames Outfitters, and show the team's capacity.")),
    "gamma": (("publisher", "List Hudson Cloud's connected channels and the publishing schedule, and check a "
                            "LinkedIn post against the channel specs before it is scheduled."),),
}

# Tier-3 tuning for each instance's first client, so the prompt preview and the runs show it:
# (brand voice, a never rule, an approved example (kind, text)).
DEMO_CLIENT_TUNING = {
    "alpha": ("Warm, confident and poetic; celebrates Arabian heritage and modern women.",
              "Never use discount or urgency language such as '% off', 'sale' or 'hurry'.",
              ("caption", "Glow gently through the holy month: oud, rose and a little light.")),
    "beta": ("Understated British tailoring; dry wit, no exclamation marks.",
             "Never claim a garment is waterproof unless it is rated 10,000 mm or more.",
             ("headline", "Built for the walk home, not the catwalk.")),
    "gamma": ("Clear, technical and calm; numbers before adjectives.",
              "Never promise 100% uptime or 'zero downtime'.",
              ("email subject", "Your cluster, 38% cheaper to run by Q2")),
}

# The sample ERP's demo keys per agency (spokestack.sample_erp.DEMO_API_KEYS).
DEMO_ERP_AGENCY = {"alpha": "alpha", "beta": "beta", "gamma": "gamma"}

# The demo's webhook skill, one per instance for the copy agent, served by the sample ERP
# (`POST /hooks/competitor-check`, authenticated with the agency's ERP key). Its description
# shares words with Alpha's copy task, so the offline model calls it in that demo run.
DEMO_SKILL_NAME = "competitor_check"
DEMO_SKILL_PATH = "/hooks/competitor-check"
DEMO_SKILL_AGENT_TYPES = ("copy",)
DEMO_SKILL_DESCRIPTION = (
    "Check draft copy (captions, headlines, posts) against the agency's ERP for names of the "
    "client's competitors before saving it. Returns the competitors found in the text; rewrite "
    "the copy if any are named.")
DEMO_SKILL_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "The copy to check.", "minLength": 1,
                            "maxLength": 10000}},
    "required": ["text"],
}

# The guide's upgrade scenario (§9.12, §9.14) in one agency: Gamma runs media buying 2.3.1, optimises
# for performance and ROAS, has a `roas_optimizer` webhook skill that compensates for 2.3's bidding and
# reviews every update (policy staged); 2.4.0 optimises for reach and changes the default bid strategy,
# so the impact analysis marks it caution and it waits for review. Its description shares no word with
# Gamma's demo task, so the offline model does not call it in that run.
DEMO_VERSIONS_SCHEMA = "gamma"
DEMO_VERSIONS_AGENT = "media_buying"
DEMO_VERSIONS_FROM = "2.3.1"
DEMO_VERSIONS_TO = "2.4.0"
DEMO_VERSIONS_PREFERENCES = ("performance", "roas")
DEMO_ROAS_SKILL_NAME = "roas_optimizer"
DEMO_ROAS_SKILL_PATH = "/hooks/roas-optimizer"
DEMO_ROAS_SKILL_RELIES_ON = ("recommend_bid_strategy",)
DEMO_ROAS_SKILL_DESCRIPTION = (
    "Optimises toward a target ROAS from conversion value data in the agency's ERP: returns the ROAS target and "
    "the average order value to give when the objective is sales.")
DEMO_ROAS_SKILL_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"client": {"type": "string", "description": "The client's name.", "minLength": 1,
                              "maxLength": 200}},
    "required": ["client"],
}

# Each demo client's brand guidelines (issue #17): seeded as a document of kind brand_guidelines,
# ingested at seed time, searched by the agents' search_knowledge tool and cited. Alpha's are
# stored as PDF, Beta's as DOCX and Gamma's as Markdown, so the demo shows each reader at work.
# Alpha's demo run asks for captions "following the brand guidelines".
DEMO_GUIDELINES_FORMAT = {"alpha": "pdf", "beta": "docx", "gamma": "md"}


@dataclass(frozen=True)
class DemoGuidelines:
    client: str
    about: str
    voice: str
    tone: tuple[str, ...]
    use: tuple[str, ...]
    avoid: tuple[str, ...]
    products: tuple[tuple[str, str], ...]  # name as written, what it is
    social: tuple[str, ...]
    claims: tuple[str, ...]
    examples: tuple[tuple[str, str], ...]  # (do, don't)

    @property
    def title(self) -> str:
        return f"{self.client} brand guidelines"

    def sections(self) -> list[tuple[str, str]]:
        """(heading, text) in order: the document as the seed writes it in any format."""
        return [
            ("About the brand", self.about),
            ("Voice", self.voice),
            ("Tone", "Our tone shifts with the moment but stays recognisably ours:\n"
             + "\n".join(f"- {line}" for line in self.tone)),
            ("Words we use", "Reach for these words and phrases first:\n" + "\n".join(f"- {w}" for w in self.use)),
            ("Words we avoid", "Never write these words or phrases, in any language or channel:\n"
             + "\n".join(f"- {w}" for w in self.avoid)),
            ("Product names", "Write product names exactly as below: capitals, spacing and spelling included. "
             "Never abbreviate them, never translate them.\n"
             + "\n".join(f"- {name}: {what}" for name, what in self.products)),
            ("Writing for social media", "\n".join(f"- {line}" for line in self.social)),
            ("Claims and legal", "\n".join(f"- {line}" for line in self.claims)),
            ("Examples", "\n".join(f"- Write: \u201c{do}\u201d Not: \u201c{dont}\u201d" for do, dont in self.examples)),
        ]

    def markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n\n".join(f"## {heading}\n\n{text}" for heading, text in self.sections()) + "\n"


DEMO_GUIDELINES = {
    "Desert Bloom Cosmetics": DemoGuidelines(
        client="Desert Bloom Cosmetics",
        about="Desert Bloom Cosmetics makes skincare and fragrance in Dubai from ingredients of the Arabian "
              "Peninsula: Taif rose, oud, date seed oil and frankincense. It was founded in 2014 by two sisters who "
              "wanted products that respect the climate of the Gulf: heat, dry air and long days in the sun. We "
              "speak to modern women across the GCC who love their heritage and live fully in the present. Every "
              "piece of copy should feel like an invitation from a friend who knows the desert well.",
        voice="Warm, confident and poetic. We write short, sensory sentences that let the reader smell the rose "
              "and feel the evening air. We celebrate Arabian heritage without nostalgia and modern women without "
              "cliché. We are generous with light and scent imagery and sparing with adjectives: one precise word "
              "beats three vague ones. We never shout; there are no exclamation marks in headlines.",
        tone=("During Ramadan: calm, reflective and generous; speak of gatherings, light and gratitude, never of "
              "shopping or deals.", "At Eid: joyful and festive, still elegant.",
              "For product launches: curious and confident; lead with the ingredient's story.",
              "In customer care: plain, kind and quick; no poetry when someone needs an answer."),
        use=("glow", "ritual", "heritage", "radiance", "bloom", "gentle", "golden hour", "hydration",
             "crafted in Dubai", "Taif rose"),
        avoid=("sale", "% off", "hurry", "limited time only", "anti-ageing", "flawless", "miracle", "cheap",
               "exotic", "oriental"),
        products=(("Taif Rose Glow Serum", "a hydrating serum with Taif rose water and date seed oil"),
                  ("Oud Noir Eau de Parfum", "the evening fragrance: oud, amber and smoked vanilla"),
                  ("Golden Hour Body Oil", "a shimmering body oil with frankincense"),
                  ("Ramadan Glow Collection", "the seasonal set of serum, balm and candle")),
        social=("Instagram captions are at most 150 characters before hashtags.",
                "Use at most three hashtags, always including #DesertBloom.",
                "Lead with an image of light, scent or touch; end with a gentle invitation, not an order.",
                "Arabic and English captions are written separately, never translated word for word."),
        claims=("Never claim a product cures, heals or treats any condition.",
                "Say 'dermatologist tested' only for the Taif Rose Glow Serum.",
                "Do not name or compare with competitors such as Sahara Glow."),
        examples=(("Glow gently through the holy month: Taif rose, oud and a little light.",
                   "HUGE Ramadan SALE - 30% off everything, hurry!"),
                  ("Golden hour, bottled.", "The best body oil ever made!!!")),
    ),
    "Gulf Bank": DemoGuidelines(
        client="Gulf Bank",
        about="Gulf Bank is a retail and business bank with branches across the GCC. Its customers are salaried "
              "professionals, families and owners of small businesses. The brand promise is 'Banking that keeps "
              "its word': clear fees, fast answers and advice that puts the customer's interest first.",
        voice="Assured, clear and respectful. Short sentences, plain words, numbers where they help. We explain "
              "before we sell, and we never make money sound like a game.",
        tone=("Product pages: factual and helpful; say what it costs and what it gives.",
              "Campaigns: optimistic about the customer's plans, never about markets.",
              "Difficult news (fees, outages): direct, apologetic once, then practical."),
        use=("clear", "secure", "your plans", "transparent fees", "Sharia-compliant", "advice", "save",
             "business banking"),
        avoid=("guaranteed returns", "risk-free", "get rich", "free money", "cheap loan", "no strings attached"),
        products=(("Gulf Bank Salary Plus", "the current account for salaried customers"),
                  ("Gulf Bank Home Finance", "Sharia-compliant home finance"),
                  ("Gulf Bank Business One", "the account and card for small businesses")),
        social=("No emojis except a single checkmark in service updates.",
                "Every post about a product links to its fee page."),
        claims=("Every rate is shown with its APR and the date it applies from.",
                "Never promise approval: say 'subject to eligibility'."),
        examples=(("Your salary, your plans: Salary Plus keeps fees clear from day one.",
                   "Get rich fast with our risk-free account!"),),
    ),
    "Thames Outfitters": DemoGuidelines(
        client="Thames Outfitters",
        about="Thames Outfitters has made outerwear in London since 1962: waxed cotton jackets, wool coats and "
              "weatherproof layers for people who walk to work in the rain. We sell through our own shops and "
              "online in the UK and the EU.",
        voice="Understated British tailoring in words: dry wit, precise detail, no exclamation marks. We describe "
              "cloth, stitching and weather honestly and let the reader decide.",
        tone=("Launches: quietly proud; the detail is the news.",
              "Sale periods: matter-of-fact; name the price, skip the fanfare.",
              "Care and repairs: practical and warm; we would rather mend a coat than sell a new one."),
        use=("built to last", "made in London", "waxed cotton", "repair", "the walk home", "weatherproof",
             "tailored"),
        avoid=("fast fashion", "must-have", "on trend", "waterproof (unless rated 10,000 mm or more)", "epic",
               "insane"),
        products=(("The Embankment Jacket", "waxed cotton field jacket"),
                  ("The Mortlake Overcoat", "single-breasted wool overcoat"),
                  ("Thames Repair Service", "free repairs for the life of the garment")),
        social=("One garment per post; the caption names the cloth and one detail.",
                "British spelling always: colour, grey, organise."),
        claims=("Say 'weatherproof' for waxed cotton; 'waterproof' only for items rated 10,000 mm or more.",),
        examples=(("Built for the walk home, not the catwalk.", "The must-have jacket of the season!!"),),
    ),
    "Covent Kitchen": DemoGuidelines(
        client="Covent Kitchen",
        about="Covent Kitchen runs three restaurants and a cookery school in central London, cooking seasonal "
              "British food from small farms within 100 miles.",
        voice="Generous, lively and unpretentious: we talk like the person at the pass who loves the produce.",
        tone=("Menus: precise and appetising; name the farm and the season.",
              "Social: playful, with the odd pun about vegetables."),
        use=("seasonal", "from the farm", "shared plates", "cookery school", "local growers"),
        avoid=("foodie", "superfood", "guilt-free", "clean eating"),
        products=(("Covent Kitchen Sunday Roast", "the Sunday set menu"),
                  ("Covent Cookery School", "evening and weekend classes")),
        social=("Always credit the grower by name when a dish features their produce.",),
        claims=("Allergens are listed on every menu; never say a dish is allergen-free.",),
        examples=(("Asparagus from Wye Valley, on the plate by noon.", "Guilt-free superfood bowls!"),),
    ),
    "Hudson Cloud": DemoGuidelines(
        client="Hudson Cloud",
        about="Hudson Cloud sells managed Kubernetes and data platforms to mid-size companies in the United "
              "States. Buyers are engineering leaders and finance teams who want predictable cost.",
        voice="Clear, technical and calm. Numbers before adjectives; show the benchmark, then the benefit.",
        tone=("Technical content: exact and unhurried; define terms once.",
              "Campaigns: confident about measured results, humble about everything else."),
        use=("predictable cost", "managed", "observability", "migration", "uptime SLA of 99.95%"),
        avoid=("100% uptime", "zero downtime", "revolutionary", "game-changing", "synergy"),
        products=(("Hudson Cloud Kubernetes", "the managed Kubernetes service"),
                  ("Hudson DataLake", "managed lakehouse storage and query"),
                  ("Hudson Cost Guard", "spend forecasting and alerts")),
        social=("LinkedIn first; one chart or number per post.",),
        claims=("Quote the SLA as 99.95%; never promise 100% uptime or zero downtime.",),
        examples=(("Your cluster, 38% cheaper to run by Q2.", "Revolutionary zero-downtime cloud!"),),
    ),
    "Brooklyn Health": DemoGuidelines(
        client="Brooklyn Health",
        about="Brooklyn Health is a network of community clinics in New York offering primary care, pediatrics "
              "and telehealth.",
        voice="Caring, clear and inclusive. Plain language at a sixth-grade reading level.",
        tone=("Patient information: calm and step by step.",
              "Campaigns: encouraging, never fearful."),
        use=("your care team", "same-day appointments", "telehealth", "community", "in your language"),
        avoid=("cure", "miracle", "patients suffering from", "non-compliant"),
        products=(("Brooklyn Health Now", "same-day telehealth visits"),
                  ("Brooklyn Health Kids", "pediatric clinics")),
        social=("Never show or describe an identifiable patient without written consent.",),
        claims=("No outcome guarantees; say 'may help' and cite the source for any health statistic.",),
        examples=(("Same-day appointments, in your language.", "Miracle cures at our clinic!"),),
    ),
}


# One agency-built agent per demo agency (agents.studio, issue #18): (slug, definition, demo task).
# `make run` publishes each as v1 and runs it once for the agency's first client.
DEMO_STUDIO_AGENTS = {
    "alpha": ("social_caption", {
        "title": "Social caption agent",
        "purpose": "Short, on-brand social captions for Instagram and LinkedIn, checked against the client's rules.",
        "instructions": "Read the brand guidelines first. Write three caption options of at most 150 characters, "
                        "check each against the brand rules, then recommend the best one and say why in one line.",
        "persona": {"voice": "Warm, witty and concise", "traits": {"creativity": 70, "formality": 30}},
        "tools": ["copy.get_brand_guidelines", "copy.check_brand_rules", "core.search_knowledge"],
        "limits": {"max_iterations": 8, "max_tokens": 1024},
        "starters": ["Three captions for the Ramadan launch", "A LinkedIn post about our new store"],
        "icon": "✍", "colour": "#C98B7B",
    }, "Write three Instagram captions for Desert Bloom's Ramadan glow collection following the brand guidelines."),
    "beta": ("launch_brief_checker", {
        "title": "Launch brief checker",
        "purpose": "Reads a client's details and drafts a one-page launch brief with the open questions listed.",
        "instructions": "Start from the client's information. Draft a one-page brief (objective, audience, "
                        "message, channels, timing) and end with the three questions the client must answer.",
        "persona": {"voice": "Plain and structured", "traits": {"formality": 60, "detail": 80}},
        "tools": ["brief.get_client_info", "core.search_knowledge"],
        "limits": {"max_iterations": 6},
    }, "Draft a launch brief for Thames Outfitters' spring rain-jacket capsule."),
    "gamma": ("budget_explainer", {
        "title": "Budget explainer",
        "purpose": "Explains a media budget forecast to a client in plain words.",
        "instructions": "Forecast the budget the task gives, then explain the forecast in five short bullet points a "
                        "client without media-buying knowledge understands.",
        "persona": {"voice": "Clear and reassuring", "traits": {"formality": 50}},
        "tools": ["media_buying.forecast_budget", "core.search_knowledge"],
        "limits": {"max_iterations": 6},
    }, "Explain what a $20,000 search budget for Hudson Cloud's Q2 would buy, in plain words."),
}

# The eval set each agency keeps (issue #22), from its demo runs: the demo run's task for its first
# client (here: its title and extra expectations), and each catalogue run's task; every case asks for
# at least 200 characters that pass the client's brand rules. Gamma, the performance agency reviewing
# media buying 2.4.0, plans with its own audiences: a plan must bid and be saved, and must not size an
# audience expansion. 2.4.0 (optimised for reach) expands audiences on that task, so the seeded
# update's eval set shows 2.3.1 passing every case and 2.4.0 one fewer, and `staged` refuses it.
DEMO_EVAL_CASES = {
    "alpha": {"title": "Ramadan glow captions, checked and saved",
              "expectations": {"phrases_forbidden": ["% off", "hurry"]}},
    "beta": {"title": "Autumn outerwear brief"},
    "gamma": {"title": "Q1 lead-generation plan on our own audiences",
              "expectations": {"tools_required": ["recommend_bid_strategy", "save_plan"],
                               "tools_forbidden": ["audience_expansion"]}},
}
