"""Every bound on what a caller may send (and on what the service keeps of a failure), in one
place: the core checks them, and the gateway, the dashboard, the settings and the SDK import them
(stdlib only, so that the SDK can)."""

from __future__ import annotations

from datetime import timedelta

# -- text, in characters -----------------------------------------------------------------------

MAX_KIND_LENGTH = 200
MAX_REQUEST_ID_LENGTH = 200  # a task's request_id, a REST Idempotency-Key
MAX_CONCURRENCY_KEY_LENGTH = 200
MAX_STEP_NAME_LENGTH = 200  # a workflow step's name
MAX_WORKFLOW_NAME_LENGTH = 200
MAX_QUEUE_NAME_LENGTH = 63  # a DNS label's, so that a name fits wherever a label does
QUEUE_NAME_PATTERN = rf"[a-z0-9][a-z0-9_-]{{0,{MAX_QUEUE_NAME_LENGTH - 1}}}"
QUEUE_NAME_RULE = (
    f"1 to {MAX_QUEUE_NAME_LENGTH} lowercase letters, digits, '-' or '_', starting with a letter "
    "or digit"
)
MAX_CRON_LENGTH = 200  # as the caller wrote it, before its spaces are collapsed
MAX_TIME_ZONE_LENGTH = 100  # the longest IANA name is about a third of it
MAX_DESCRIPTION_LENGTH = 1000
MAX_PAGE_TOKEN_LENGTH = 1000  # the service's own tokens are a tenth of it
MAX_TOKEN_LENGTH = 8192  # a bearer token
# All of one call's gRPC metadata, set on the api's server: twice gRPC's default of 8 KiB, so
# that a token at MAX_TOKEN_LENGTH fits beside the other headers and the api's own check binds.
MAX_METADATA_BYTES = 16 * 1024
MAX_ERROR_TYPE_LENGTH = 500  # an error type filtered by (a module and a class name)
MAX_FILTER_ID_LENGTH = 64  # the dashboard's schedule filter box; the api parses the id itself
MAX_SEARCH_LENGTH = 1000  # the dashboard's search box: a task id, its start, or payload fields

# -- counts ------------------------------------------------------------------------------------

MAX_BATCH_SIZE = 1000  # tasks of one BatchScheduleTasks
MAX_BULK_IDS = 1000  # task ids one BatchCancelTasks or BatchRetryTasks names
MAX_BULK_REPORTED = 1000  # tasks not acted on (and copies) a bulk answer names; the rest counted
BULK_PAGE_SIZE = 200  # tasks a bulk action by filter reads at a time
MAX_PAGE_SIZE = 1000
MAX_WORKFLOW_STEPS = 1000  # steps of one CreateWorkflow
MAX_DEPENDS_ON = 1000  # task ids one ScheduleTask may depend on
MAX_SPAWNED = 1000  # steps one attempt may add to its workflow (context.spawn)
# Protobuf parsers stop at 64 nested messages, and each level of a Struct costs two or three.
MAX_PAYLOAD_DEPTH = 20  # objects and lists nested in a payload, the payload itself included
MAX_FAILURE_GROUPS = 100  # error types ListFailureGroups returns, most failures first

# -- ranges ------------------------------------------------------------------------------------

MIN_PRIORITY = 0
MAX_PRIORITY = 9
MIN_ATTEMPTS = 1  # attempts in all, the first included
MAX_ATTEMPTS = 100
MIN_BACKOFF_MULTIPLIER = 1.0  # below 1, each backoff would be shorter than the one before
MAX_BACKOFF_MULTIPLIER = 100.0
MAX_RATE_PER_SECOND = 100_000.0  # a queue's rate limit
MAX_CONCURRENCY = 1_000_000  # a queue's max_concurrent, max_concurrent_per_key and burst

# -- durations ---------------------------------------------------------------------------------

MAX_DURATION = timedelta(days=365)  # an attempt's timeout, a backoff
MAX_CATCHUP_WINDOW = timedelta(days=7)
MAX_COUNT_WINDOW = timedelta(days=7)  # how far back CountTasks counts finished tasks

# -- what the service keeps of a failure -------------------------------------------------------

MAX_ERROR_MESSAGE_CHARS = 4_000
MAX_PROGRESS_MESSAGE_CHARS = 500  # a progress report's message (cut, as an error's is)
PROGRESS_WRITE_INTERVAL_SECONDS = 0.25  # a handler's progress is written at most 4 times a second
MAX_TRACEBACK_CHARS = 16_000  # its end, where the raise is
