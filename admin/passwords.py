"""What a password must be (OWASP ASVS level 1, 2.1.1 and 2.1.7): 12 characters or more, and not one that
leaks have made common. The check is zxcvbn's (a package, so it works with no network): its main
dictionary is the 30,000 passwords most common in leaked password dumps, and it also sees those
passwords with digits appended, l33t spellings, keyboard walks and repeats. A password it expects to
fall within 10^8 guesses (its score below 3) is refused."""
from __future__ import annotations

from functools import cache

from werkzeug.security import check_password_hash, generate_password_hash

MIN_LENGTH = 12
MAX_LENGTH = 256
ZXCVBN_LENGTH = 72
MIN_SCORE = 3  # zxcvbn: 3 is "safely unguessable: moderate protection from offline slow-hash scenario"


def problem(password: str, name: str = "") -> str | None:
    """Why `password` is refused for user `name`, or None when it is fine."""
    if len(password) < MIN_LENGTH:
        return f"the password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password may have at most {MAX_LENGTH} characters"
    from zxcvbn import zxcvbn  # here: its dictionaries take a moment to load

    # zxcvbn reads at most 72 characters (it raises beyond: its matching grows fast with length); a
    # password whose first 72 are easy to guess is easy to guess.
    result = zxcvbn(password[:ZXCVBN_LENGTH], user_inputs=[name, "lmp", "admin"])
    if result["score"] < MIN_SCORE:
        warning = result["feedback"]["warning"] or "it is too easy to guess"
        return f"the password is one that leaked passwords make easy to guess ({warning.rstrip('.')}); choose another"
    return None


def hashed(password: str) -> str:
    return generate_password_hash(password, method="scrypt")  # a slow, salted hash


@cache
def _dummy() -> str:
    return hashed("not anybody's password, only hashed to spend the time")


def matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed; with no hash (no such user) it hashes anyway and says no, so
    that an unknown name takes as long as a wrong password and names cannot be told by timing."""
    if password_hash is None:
        check_password_hash(_dummy(), password)
        return False
    return check_password_hash(password_hash, password)

