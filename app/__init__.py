"""RadLens: a desktop viewer for radiologists that shows what an AI model sees."""

__version__ = "0.1.0"
