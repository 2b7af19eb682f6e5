"""Self-contained HTML reports: one file each, inline CSS and inline SVG charts, no scripts, no
network, no external CSS, fonts or images, so a report can be mailed, archived with a CI run, or
opened on the device. Every field of a document may be missing or null.

``html`` (stylesheet, escaping, tables, page), ``charts`` (SVG), ``parity`` (per output blocks)
and ``device`` (``render_device_report``: verify and bench). The build report is the packager's
(``packager.report.html``), made of the same pieces. Imported only with ``--report``.
"""
