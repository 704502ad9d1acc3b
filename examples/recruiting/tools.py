"""The recruiting workflow's tools, named by workflow.yaml (``tools.py:reject``...); the test
workflow (tests/fixtures/workflow) links to this file and uses them too."""


def reject(candidate_name: str) -> str:
    """Reject a candidate.

    Args:
        candidate_name: The name of the candidate.
    """
    return f"Rejected {candidate_name}."


def draft_candidate_email(content: str) -> str:
    """Draft an email to reach out to a candidate.

    Args:
        content: The full text of the email.
    """
    return f"Here is a draft email: {content}"
