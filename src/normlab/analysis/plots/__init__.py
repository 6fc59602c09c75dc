"""One module per figure (``draw(inputs) -> Figure``), the shared style (``style``) and what they read
(``inputs``).  The figures only draw: every number comes from the tables of ``normlab stats``."""
