"""tokensmith-zett: Zero-Shot Tokenizer Transfer (Minixhofer, Ponti & Vulić, arXiv 2405.07883).

Nothing heavy is imported here; see :mod:`.hypernet`, :mod:`.sampler`, :mod:`.recipe`,
:mod:`.provider`."""
