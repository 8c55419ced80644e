"""Specialization knowledge every core agent shares (DESIGN §4, tier 1).

A run's specialization (vertical, region, language — from the request, else the client, else
the instance's defaults) selects one paragraph from each table below, and the assembler adds
them to the system prompt after the base prompt. They are written for the model: short,
concrete, and about what changes in the work (claims, calendar, format, law), not marketing
generalities. One shared table, because a finance claim rule is as true for copy as for an
RFP response; an agent spec that needs something narrower adds it to its own base prompt.

The tables are read-only mappings: specs are immutable, and a change here is a change to every
agent version that shares them, so it belongs in a new release.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tuning.specialization import lenient

# The industries the ERP keeps benchmarks and past projects for (the tools' enums). Knowledge
# covers more: every vertical, region and language `tuning.specialization` can yield.
VERTICALS = ("beauty", "fashion", "food", "technology", "finance", "healthcare")
REGIONS = ("GCC", "MENA", "EU", "US", "APAC")
LANGUAGES = ("en", "ar", "fr", "de")
CHANNELS = ("search", "social", "display", "video", "ctv")

_VERTICAL = {
    "beauty": (
        "Beauty: sell the ritual and the result the customer can see, never a medical effect. Avoid "
        "drug-like claims (cures, repairs DNA, anti-aging as a promise, whitening/lightening) and "
        "'clinically proven' unless the client supplies the study; cosmetics regulators (EU 1223/2009 "
        "claims criteria, FDA, GCC SFDA/ESMA) treat them as medicinal claims. Show shade range and skin "
        "types inclusively, name hero ingredients precisely, disclose creator partnerships (#ad). "
        "Peaks: Ramadan/Eid and White Friday in the Gulf, Valentine's, Mother's Day, 11.11, Black Friday."
    ),
    "fashion": (
        "Fashion: the product, the fit and the moment sell; lead with the look, then material and "
        "care. Sustainability words (eco, sustainable, green, circular) need proof the client can "
        "show (certificates, percentages) or they are greenwashing under the EU Green Claims rules and "
        "the UK CMA Green Claims Code. Drops and seasons (SS/AW), sizing clarity and returns policy "
        "reduce friction; creator content and shoppable video outperform static catalogue images. "
        "Luxury: heritage, craft and scarcity over price; never discount-led or urgency language."
    ),
    "food": (
        "Food and beverage: appetite first (texture, temperature, provenance), then price and "
        "convenience. Health and nutrition claims are tightly regulated (EU 1924/2006 permitted claims "
        "list; no 'superfood', 'detox' or 'guilt-free' implications); list allergens when naming dishes; "
        "HFSS advertising restrictions apply in the UK. Halal status matters in GCC/MENA; alcohol "
        "cannot be advertised in most GCC markets. Peaks: Ramadan iftar/suhoor, Christmas, summer."
    ),
    "technology": (
        "Technology: proof over hype. Back each claim with a number, a benchmark or a named customer; "
        "avoid absolutes ('unhackable', '100% uptime', 'best-in-class') that cannot be substantiated. "
        "B2B buyers are committees: address the practitioner (how it works), the manager (time and "
        "risk) and the buyer (cost, security, compliance such as SOC 2, ISO 27001, GDPR). Name "
        "products exactly; long sales cycles favour content, search and account-based programmes."
    ),
    "finance": (
        "Finance: a regulated category. Never promise returns or call anything risk-free; show "
        "representative rates (APR/APY/profit rate) with equal prominence to the benefit, and add the "
        "risk warning and 'terms and conditions apply' the regulator expects (FCA financial "
        "promotions and Consumer Duty, SEC/FINRA, CBUAE, SAMA). Sharia-compliant products use their "
        "own vocabulary (profit rate, not interest). Plain numbers, no jargon; trust beats urgency."
    ),
    "retail": (
        "Retail and e-commerce: sell the offer the shopper can act on now — product, price, "
        "availability, delivery and returns — with one clear call to action. Prices and discounts "
        "must be real: a 'was' price needs a genuine prior selling period (EU Omnibus Directive: the "
        "lowest price of the last 30 days), and 'free delivery' or 'sale' need their conditions shown. "
        "Feed product titles and attributes for search and retail media; plan around Black Friday, "
        "White Friday, 11.11, Ramadan and Eid, back to school and the holidays, and localise payment "
        "options (cash on delivery, buy now pay later) per market."
    ),
    "healthcare": (
        "Healthcare: inform and reassure, never frighten. No cure or guaranteed-outcome claims, no "
        "'FDA approved' unless verified for that exact use; prescription-only medicines cannot be "
        "advertised to the public in the EU, UK or GCC. Use person-first language, add 'talk to your "
        "doctor' on treatment content, keep patient stories consented and typical. Respect privacy "
        "law (HIPAA in the US, GDPR special-category data in the EU) in targeting and retargeting."
    ),
}

_REGION = {
    "GCC": (
        "GCC (UAE, Saudi Arabia, Qatar, Kuwait, Bahrain, Oman): plan around the Hijri calendar — "
        "Ramadan (media consumption moves late at night, iftar and suhoor moments, charitable and "
        "family tone, no eating or drinking in daytime creative), Eid al-Fitr and Eid al-Adha (gifting "
        "peaks), national days (UAE 2 Dec, KSA 23 Sep), White Friday, DSF. Weekends are Saturday–Sunday "
        "in the UAE and Friday–Saturday in KSA. Arabic first with English alongside; Arabic layouts are "
        "right-to-left. Modesty norms: covered shoulders and knees, no intimacy, no alcohol, pork or "
        "gambling, respectful use of religion. Snapchat, TikTok and Instagram are strong; KSA has a "
        "young, mobile-first audience. Influencer ads need an advertiser licence (UAE, KSA)."
    ),
    "MENA": (
        "MENA beyond the Gulf (Egypt, Jordan, Lebanon, Morocco…): large, young, price-sensitive, "
        "mobile-first audiences with lower CPMs. Arabic dialects differ (Egyptian and Levantine for "
        "colloquial social copy, Modern Standard Arabic for formal text); French works in the Maghreb "
        "and Lebanon. Ramadan drives the year's biggest TV and YouTube season; Facebook and WhatsApp "
        "remain important. Keep conservative imagery and respect religious occasions as in the GCC."
    ),
    "EU": (
        "EU/UK: GDPR — targeting and retargeting need a lawful basis and cookie consent (opt-in, as "
        "easy to refuse as accept), no sensitive-category targeting, and the DSA bans ads profiled on "
        "sensitive data or aimed at minors. Claims must be substantiated: the UCPD blacklists false "
        "urgency and 'free' when it is not, and the UK ASA/CAP Code polices misleading, environmental "
        "and comparative claims. Label ads and influencer posts (#ad). Localise per market (language, "
        "currency, holidays), not one English cut; August is quiet in southern Europe."
    ),
    "US": (
        "US: FTC rules — claims need substantiation, endorsements and influencer posts need clear "
        "disclosure (#ad, 'paid partnership'), 'Made in USA' and green claims have their own guides. "
        "State privacy laws (CCPA/CPRA and others) require opt-outs for targeted advertising. Plan "
        "around the Super Bowl, Memorial Day, July 4th, Back to School, Black Friday–Cyber Monday and "
        "the holidays; Spanish-language creative reaches a large Hispanic audience. CTV and retail "
        "media are major channels."
    ),
    "APAC": (
        "APAC: many markets, not one. Platforms differ by country (WeChat, Douyin and Xiaohongshu in "
        "China; LINE in Japan, Taiwan and Thailand; Kakao and Naver in Korea; Shopee/Lazada in "
        "Southeast Asia); commerce peaks are Lunar New Year, 11.11, 12.12 and Singles' Day. Localise "
        "language and imagery per market, respect local data laws (PIPL in China, APPI in Japan, PDPA "
        "in Singapore and Thailand) and check colour and number symbolism."
    ),
}

_LANGUAGE = {
    "en": (
        "English: match the client's variant (British or American spelling, dates and currency "
        "format) and keep it consistent. Short sentences, active voice, one idea per line in ads; "
        "sentence case in headlines unless the brand says otherwise."
    ),
    "ar": (
        "Arabic: write natively, do not translate English copy word for word. Modern Standard Arabic "
        "for formal and print, Gulf dialect (Khaleeji) for casual social copy in the GCC. Text runs "
        "right to left: mirror layouts, keep numerals and brand names readable in mixed lines, and "
        "allow about 20–30% more space than English. Avoid transliterated English slang; use the "
        "Hijri occasion names (رمضان كريم، عيد مبارك) correctly."
    ),
    "fr": (
        "French: vouvoiement for brands by default (tutoiement only if the brand's voice is young and "
        "the client approves), French typography (non-breaking space before : ; ! ?, « guillemets »), "
        "and the Loi Toubon: advertising in France must be in French, with translations of any "
        "English slogan. Canadian French and Belgian/Swiss usage differ from France."
    ),
    "de": (
        "German: Sie by default, du only where the brand speaks that way; nouns are capitalised and "
        "compounds run long, so plan for about 30% more space than English. German consumers and "
        "courts (UWG) punish exaggeration: superlatives and comparisons need proof. Imprint "
        "(Impressum) and data-protection notices are expected on landing pages."
    ),
}

KNOWLEDGE: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "vertical": MappingProxyType(_VERTICAL),
    "region": MappingProxyType(_REGION),
    "language": MappingProxyType(_LANGUAGE),
})


def knowledge_for(specialization: Mapping[str, str]) -> dict[str, str]:
    """The paragraphs that apply to a specialization ({"vertical", "region", "language"}),
    keyed by dimension, after the one normaliser (`tuning.specialization`: "gcc", "uae", "en-GB",
    "e-commerce" …); unknown or missing values contribute nothing."""
    found = {}
    for dimension, table in KNOWLEDGE.items():
        key = lenient(dimension, specialization.get(dimension))
        if key in table:
            found[dimension] = table[key]
    return found
