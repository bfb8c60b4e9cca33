"""Reports: a store's runs as the paper's figures and tables, beside the paper's own numbers (docs/method.md §7),
and the claims of docs/method.md §9 judged on what was run. matplotlib is imported only when a figure is drawn."""
from wninit.suite.report.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_RUN, NOT_TRAINED, Claim
from wninit.suite.report.reference import REFERENCES, Reference, scheme_label
from wninit.suite.report.render import Report, claims_markdown, claims_text, judge_claims, render_report

__all__ = ["render_report", "Report", "judge_claims", "claims_text", "claims_markdown", "Claim", "HOLDS", "FAILS",
           "NOT_RUN", "INCONCLUSIVE", "NOT_TRAINED", "REFERENCES", "Reference", "scheme_label"]
