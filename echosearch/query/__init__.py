"""Query understanding: free clinical text -> what the model reads, filters and a ranking plan.

``interpret("severe LV dysfunction, no pacer", load_lexicon("demo"))`` gives an
:class:`Interpretation`: filled vocabulary phrases with weights, negative phrases, filters the user
stated, label preferences, and the words that were not understood. See ``configs/lexicon/``.
"""

from echosearch.query.interpret import Condition, Interpretation, Phrase, interpret
from echosearch.query.lexicon import Lexicon, available_lexicons, load_lexicon
from echosearch.query.parse import Mention, Number, parse_query

__all__ = [
    "Condition",
    "Interpretation",
    "Lexicon",
    "Mention",
    "Number",
    "Phrase",
    "available_lexicons",
    "interpret",
    "load_lexicon",
    "parse_query",
]
