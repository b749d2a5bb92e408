"""Reading mail: a bounded MIME walk (``parse``), header fields (``headers``), text as people read
it (``text``), the sender's commands (``commands``), carrier templates (``mms``), Outlook's TNEF
and Apple's forks, the sender policy (``sender``), and the job that unpacks a spooled message
(``unpack``). Nothing here answers a client: the SMTP door calls in, never the other way round."""
