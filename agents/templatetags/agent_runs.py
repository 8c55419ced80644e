from django import template

register = template.Library()


@register.simple_tag
def run_badge(run):
    from agents.admin import status_badge

    return status_badge(run)
