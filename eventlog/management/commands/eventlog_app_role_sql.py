from django.core.management.base import BaseCommand

from eventlog import guards


class Command(BaseCommand):
    help = "Print the GRANT statements for the production application role (PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("role")

    def handle(self, *, role, **options):
        for statement in guards.app_role_grants_sql(role):
            self.stdout.write(statement + ";")
