"""A build's reports: the terminal summary (``text``) and the self-contained HTML page (``html``,
made of the runtime's report pieces)."""
