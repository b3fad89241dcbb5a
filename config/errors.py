"""The base of every app's refusals: a command or query refused for a reason its message gives.

Each app's errors (AnnotationError, AttackError, EventLogError, ModelserveError, InvalidInput)
derive from `Refused` and carry the HTTP status their pages and the API answer with; the API's
exception handler (config/api.py) needs to know no app to answer them.
"""


class Refused(Exception):
    status_code = 400
