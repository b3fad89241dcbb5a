"""An admin page that holds one form (starting a job, choosing a threshold, opening a campaign)."""

from django.shortcuts import render


def form_page(admin_site, request, *, title: str, form, submit_label: str = "Save",
              template: str = "admin/form_page.html", refused: bool | None = None, **extra):
    """The form in the admin's frame. `refused`: the form came back after a submission (a
    success redirects), answered with 400; by default, whenever the request is a POST."""
    context = {**admin_site.each_context(request), "title": title, "form": form, "submit_label": submit_label,
               **extra}
    refused = request.method == "POST" if refused is None else refused
    return render(request, template, context, status=400 if refused else 200)
