"""The built-in analyzers, registered through the same hook as any third-party plugin."""

from ..core.hookspecs import hookimpl
from .key_phrases import KeyPhrasesAnalyzer
from .site_intent import SiteIntentAnalyzer
from .word_frequency import WordFrequencyAnalyzer


@hookimpl
def register_analyzers(register):
    register(KeyPhrasesAnalyzer())
    register(WordFrequencyAnalyzer())
    register(SiteIntentAnalyzer())
