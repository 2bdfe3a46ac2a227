"""Server storage: the topic registry, segment logs, the group-commit writer and retention.

`topics.TopicRegistry` maps ids and names to `segments.TopicLog`s; `writer.GroupCommitWriter`
is the single thread that changes anything on disk; `retention` decides which closed segments
go. See each module for how bytes flow between the event loop and the threads.
"""
