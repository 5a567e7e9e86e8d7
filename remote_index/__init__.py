"""The read side of the remote tier: what is in the bucket (partition manifests,
segment metadata, chunk index), the object-store clients, and the cold-read path.

Decides nothing about *when* data moves; that is `tiering`'s job.
"""
