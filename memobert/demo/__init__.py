"""The built-in demo: media the library draws itself (`media`: two faces talking in turn, with transcripts) and the
demo corpus made from them by the preprocessing pipeline (`corpus`). It sits above `data` and `preprocessing`
(it uses both); nothing below it imports it.

    from memobert.demo.media import make_demo_media
    from memobert.demo.corpus import build_demo_corpus
"""

# Where the demo corpus is cached between runs (pretraining and downstream default to it).
DEMO_CACHE_DIR = "~/.cache/memobert/demo_corpus"
