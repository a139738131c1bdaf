"""``reid import``: checkpoints of other re-ID frameworks as reid run directories.

One module per source framework (:mod:`~reidcore.importers.torchreid`,
:mod:`~reidcore.importers.fastreid`) describes each architecture it knows as an
:class:`~reidcore.importers.mapping.Architecture`: the reid recipe that builds the same
network and, for every key of that network, the key of the source checkpoint it comes from.
:mod:`~reidcore.importers.mapping` accounts for every key both ways (nothing is dropped
silently); :mod:`~reidcore.importers.write` writes the run directory. Importing this package
imports no torch.
"""
