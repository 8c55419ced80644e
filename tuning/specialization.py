"""Specialization keys in one form: the one normaliser for vertical, region and language.

People and ERPs write "gcc", "Gulf", "uae", "KSA", "eu", "Deutschland", "en-GB", "Arabic",
"e-commerce"; the platform's knowledge tables (tier 1, `agents.knowledge`) are keyed by one
canonical value per dimension. Every place a specialization value enters — a client's
vertical/region/language, the instance's default_vertical/region/language, a run's
`specialization`, the instance's own region and language — goes through `normalise` (strict:
an unknown value is InvalidInput listing what is known) or `lenient` (stored values written
before this module existed: unknown → "", so a stale value is skipped rather than failing a run).

Every canonical region and language has a paragraph in `agents.knowledge` (tested), so a value
that passes here always adds knowledge to the prompt; the vertical "other" adds none.
"""

from __future__ import annotations

import re
import unicodedata

from spokestack.errors import InvalidInput

from .models import Vertical

DIMENSIONS = ("vertical", "region", "language")
MAX_INPUT_CHARS = 60

REGIONS = ("GCC", "MENA", "EU", "US", "APAC")
LANGUAGES = ("en", "ar", "fr", "de")
VERTICALS = tuple(Vertical.values)

_GCC = ("gcc", "gulf", "the gulf", "arabian gulf", "khaleej", "gulf cooperation council",
        "ae", "are", "uae", "u a e", "united arab emirates", "emirates", "dubai", "abu dhabi",
        "sa", "sau", "ksa", "saudi", "saudi arabia", "kingdom of saudi arabia", "riyadh",
        "qa", "qat", "qatar", "kw", "kwt", "kuwait", "bh", "bhr", "bahrain", "om", "omn", "oman")
_MENA = ("mena", "middle east", "middle east and north africa", "north africa", "levant", "maghreb", "arab world",
         "eg", "egy", "egypt", "jo", "jor", "jordan", "lb", "lbn", "lebanon", "ma", "mar", "morocco",
         "tn", "tun", "tunisia", "dz", "dza", "algeria", "iq", "irq", "iraq", "ly", "lby", "libya",
         "ps", "pse", "palestine", "sy", "syr", "syria", "ye", "yem", "yemen")
# The EU/UK paragraph covers the European Union, the EEA and the United Kingdom.
_EU_COUNTRIES = ("at", "be", "bg", "hr", "cy", "cz", "dk", "ee", "fi", "fr", "de", "gr", "hu", "ie", "it", "lv",
                 "lt", "lu", "mt", "nl", "pl", "pt", "ro", "sk", "si", "es", "se", "uk", "gb", "ch")
_EU = ("eu", "europe", "european union", "eea", "eu uk", "eu and uk", "united kingdom", "great britain", "britain",
       "england", "austria", "belgium", "bulgaria", "croatia", "cyprus", "czechia", "czech republic", "denmark",
       "estonia", "finland", "france", "germany", "deutschland", "greece", "hungary", "ireland", "italy", "latvia",
       "lithuania", "luxembourg", "malta", "netherlands", "poland", "portugal", "romania", "slovakia", "slovenia",
       "spain", "sweden", "switzerland", *_EU_COUNTRIES)
_US = ("us", "usa", "united states", "united states of america", "america")
_APAC = ("apac", "asia pacific", "asia", "southeast asia", "sea", "anz", "greater china",
         "cn", "china", "jp", "japan", "kr", "korea", "south korea", "sg", "singapore", "my", "malaysia",
         "th", "thailand", "id", "indonesia", "ph", "philippines", "vn", "vietnam", "au", "australia",
         "nz", "new zealand", "in", "india", "hk", "hong kong", "tw", "taiwan")

_LANGUAGE_NAMES = {
    "en": ("english", "eng", "anglais", "englisch", "الإنجليزية", "انجليزي"),
    "ar": ("arabic", "ara", "arabe", "arabisch", "العربية", "عربي", "msa", "modern standard arabic", "khaleeji"),
    "fr": ("french", "fra", "fre", "français", "francais", "französisch", "الفرنسية"),
    "de": ("german", "deu", "ger", "deutsch", "allemand", "الألمانية"),
}

_VERTICAL_NAMES = {
    "beauty": ("cosmetics", "skincare", "skin care", "makeup", "make up", "personal care", "fragrance",
               "beauty and personal care", "beauty & personal care"),
    # Luxury is sold through fashion's codes (heritage, craft, scarcity): the fashion paragraph covers it.
    "fashion": ("apparel", "clothing", "luxury", "luxury fashion", "luxury goods", "accessories", "footwear",
                "jewellery", "jewelry", "watches"),
    "food": ("food and beverage", "food & beverage", "f&b", "f and b", "fnb", "beverage", "beverages",
             "restaurants", "restaurant", "qsr", "hospitality food"),
    "technology": ("tech", "software", "saas", "it", "consumer electronics", "electronics", "telecom", "telco"),
    "finance": ("financial services", "banking", "bank", "fintech", "insurance", "bfsi", "islamic finance"),
    "healthcare": ("health", "health care", "pharma", "pharmaceutical", "pharmaceuticals", "medical"),
    "retail": ("e commerce", "ecommerce", "online retail", "retailer", "retailers", "shopping", "d2c", "dtc",
               "direct to consumer", "omnichannel", "marketplace", "retail and e commerce", "retail & e commerce"),
    "other": ("general",),
}


def _key(value: str) -> str:
    """Case, dots and separators folded: 'U.S.A.' -> 'usa', 'e-Commerce' -> 'e commerce', 'en_GB' -> 'en gb'."""
    return re.sub(r"[\s_\-/]+", " ", value.casefold().replace(".", "")).strip()


def _table() -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {dimension: {} for dimension in DIMENSIONS}
    for canonical, aliases in (("GCC", _GCC), ("MENA", _MENA), ("EU", _EU), ("US", _US), ("APAC", _APAC)):
        for alias in (canonical, *aliases):
            tables["region"].setdefault(_key(alias), canonical)
    for canonical, aliases in _LANGUAGE_NAMES.items():
        for alias in (canonical, *aliases):
            tables["language"].setdefault(_key(alias), canonical)
    for canonical, aliases in _VERTICAL_NAMES.items():
        for alias in (canonical, Vertical(canonical).label, *aliases):
            tables["vertical"].setdefault(_key(alias), canonical)
    return tables


ALIASES = _table()
KNOWN = {"vertical": VERTICALS, "region": REGIONS, "language": LANGUAGES}
_HINTS = {
    "region": "; country names and codes are accepted too, e.g. 'uae', 'ksa', 'qa', 'eg', 'eu', 'de', 'uk', "
              "'usa', 'sg'",
    "language": "; language names and tags are accepted too, e.g. 'English', 'en-GB', 'Arabic', 'ar-AE'",
    "vertical": "; common names are accepted too, e.g. 'Retail', 'e-commerce', 'tech', 'skincare', 'luxury'",
}


def _lookup(dimension: str, value: str) -> str | None:
    key = _key(value)
    found = ALIASES[dimension].get(key)
    if found is None and dimension == "language":
        # A language tag (BCP 47: en-GB, ar-AE, fr-CA): the primary subtag decides.
        found = ALIASES["language"].get(key.split(" ")[0]) if " " in key else None
    return found


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={field: [message]})


def normalise(dimension: str, value: object, *, field: str | None = None) -> str:
    """The canonical key for `value` ("" for blank or null), or InvalidInput naming `field` and
    listing the known values. Control characters are refused, not stripped."""
    field = field or dimension
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(field, f"must be a text, not {type(value).__name__}.")
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in value.strip()):
        raise _invalid(field, "contains control characters; send a plain name such as "
                              f"{', '.join(KNOWN[dimension][:3])}.")
    if not value.strip():
        return ""
    if len(value) > MAX_INPUT_CHARS:
        raise _invalid(field, f"is {len(value)} characters long; a {dimension} is a short name "
                              f"({', '.join(KNOWN[dimension])}).")
    found = _lookup(dimension, value)
    if found is None:
        raise _invalid(field, f"unknown {dimension} {value.strip()!r}; the known {dimension}s are "
                              f"{', '.join(KNOWN[dimension])}{_HINTS[dimension]}.")
    return found


def lenient(dimension: str, value: object) -> str:
    """The canonical key for a stored value, or "" when it is unknown (a value saved before
    normalisation, or an instance's free-text region): skipped, never an error at run time."""
    if not isinstance(value, str) or not value.strip():
        return ""
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in value):
        return ""
    return _lookup(dimension, value) or ""


def clean_client_fields(values: dict) -> dict[str, str]:
    """The client fields among vertical/region/language in `values`, normalised (client_create and
    client_update). A client's vertical cannot be blank: blank means "other"."""
    cleaned = {dimension: normalise(dimension, values[dimension]) for dimension in DIMENSIONS if dimension in values}
    if "vertical" in cleaned and not cleaned["vertical"]:
        cleaned["vertical"] = Vertical.OTHER.value
    return cleaned
