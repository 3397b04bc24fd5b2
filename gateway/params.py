"""The query parameters every list route shares (REST and the dashboard): paging."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from taskscheduler.core.limits import MAX_PAGE_SIZE, MAX_PAGE_TOKEN_LENGTH
from taskscheduler.core.paging import DEFAULT_PAGE_SIZE

PageSize = Annotated[int, Query(ge=0, le=MAX_PAGE_SIZE, description=f"0: {DEFAULT_PAGE_SIZE}.")]
PageToken = Annotated[str, Query(max_length=MAX_PAGE_TOKEN_LENGTH)]
