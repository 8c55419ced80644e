"""Every paginated list: `?page=` (1 or more, or `last`) and `?page_size=` (1 to 200, default 50).

A malformed value is a 400 naming the parameter (spokestack.api.params), as for any other query
parameter; a well-formed page past the last one is a 404 (there is no such page), as in DRF. DRF
itself would answer `?page=abc` with 404 and ignore a bad `page_size`.
"""

from rest_framework.pagination import PageNumberPagination

from .params import int_param


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    invalid_page_message = "page: there is no page {page_number} ({message}); the first page is 1."

    def get_page_size(self, request) -> int:
        size = int_param(request.query_params, self.page_size_query_param, minimum=1, maximum=self.max_page_size)
        return self.page_size if size is None else size

    def get_page_number(self, request, paginator) -> int:
        raw = request.query_params.get(self.page_query_param)
        if raw in self.last_page_strings:
            return paginator.num_pages
        number = int_param(request.query_params, self.page_query_param, minimum=1,
                           wanted="give a page number in ASCII digits, 1 or more, or 'last'.")
        return 1 if number is None else number

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            elif parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters
