"""The web console served under ``/ui`` (issue 18): pages, charts and their actions."""
