"""Command line of ``reinstall-admin``: parse arguments, open the table, run a command.

Exit status: 0 on success, 1 when a command fails (unknown name, invalid value
for the stored data, AWS error), 2 for invalid command-line usage.
"""

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from admin import arguments, domains, logs, phones, users
from admin.errors import AdminError
from core.auth import EDIT_DATA
from core.models import DELIVERY_MODES
from core.repository import Repository

PROG = "reinstall-admin"

Handler = Callable[[argparse.Namespace, Repository], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Manage the reinstall SMS service's domains, apps, web users, API keys, "
            "phone numbers and translations in its DynamoDB table."
        ),
    )
    parser.add_argument(
        "--table",
        default=os.environ.get("TABLE_NAME"),
        help="DynamoDB table name (default: the TABLE_NAME environment variable)",
    )
    parser.add_argument(
        "--endpoint-url",
        help="DynamoDB endpoint URL, for a local emulator such as moto "
        "(default: boto3's, including AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--region", help="AWS region (default: boto3's, such as AWS_REGION)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    json_option = argparse.ArgumentParser(add_help=False)
    json_option.add_argument(
        "--json", action="store_true", help="print JSON for scripts instead of a table"
    )

    _add_seed_command(commands)
    _add_domain_commands(commands, json_option)
    _add_app_commands(commands, json_option)
    _add_user_commands(commands, json_option)
    _add_key_commands(commands, json_option)
    _add_phone_commands(commands, json_option)
    _add_translation_commands(commands, json_option)
    _add_log_commands(commands, json_option)
    return parser


def _group(commands: Any, name: str, help_text: str) -> Any:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True)


def _command(
    group: Any, name: str, handler: Handler, help_text: str, **kwargs: Any
) -> Any:
    parser = group.add_parser(name, help=help_text, description=help_text, **kwargs)
    parser.set_defaults(handler=handler)
    return parser


def _add_seed_command(commands: Any) -> None:
    seed = _command(
        commands,
        "load-seed",
        domains.load_seed_file,
        "load domains, apps, web users and phone numbers from a seed file (JSON)",
    )
    seed.add_argument("file", type=Path, help="seed file")
    seed.add_argument(
        "--create-table",
        action="store_true",
        help="create the table first if it does not exist (for local runs)",
    )


def _add_domain_commands(commands: Any, json_option: argparse.ArgumentParser) -> None:
    group = _group(commands, "domain", "show and change domains (CommCare projects)")

    show = _command(
        group,
        "show",
        domains.show_domain,
        "show a domain's settings",
        parents=[json_option],
    )
    show.add_argument("name", help="domain name")

    unset = domains.UNSET
    change = _command(
        group,
        "set",
        domains.set_domain,
        "create a domain (--plan required) or change its settings; "
        f"'{arguments.CLEAR}' clears an optional setting",
    )
    change.add_argument("name", help="domain name")
    change.add_argument(
        "--plan", type=arguments.plan, default=unset, help="software plan"
    )
    change.add_argument(
        "--registration",
        type=arguments.switch,
        default=unset,
        metavar="on|off",
        help="SMS mobile worker registration (new domains: off)",
    )
    change.add_argument(
        "--default-language",
        type=arguments.language,
        default=unset,
        metavar="L",
        help="language of the default message when the contact's is unknown",
    )
    change.add_argument(
        "--sender-id",
        type=arguments.sender_id,
        default=unset,
        metavar="S",
        help="SNS sender ID, 3 to 11 letters and digits",
    )
    change.add_argument(
        "--origination-number",
        type=arguments.origination_number,
        default=unset,
        metavar="N",
        help="SNS origination number (E.164) or short code",
    )
    change.add_argument(
        "--max-price",
        type=arguments.max_price,
        default=unset,
        metavar="USD",
        help="maximum price in USD that SNS may charge for one SMS",
    )
    change.add_argument(
        "--allowed-countries",
        type=arguments.countries,
        default=unset,
        metavar="CC,CC",
        help="ISO 3166-1 alpha-2 codes of countries that may receive SMS, "
        f"or '{arguments.ALL_COUNTRIES}'",
    )
    change.add_argument(
        "--daily-sms-limit",
        type=arguments.daily_sms_limit,
        default=unset,
        metavar="N",
        help="maximum SMS per day for the domain",
    )
    change.add_argument(
        "--delivery",
        choices=DELIVERY_MODES,
        default=unset,
        help="send within the request (direct) or from a queue (queued)",
    )


def _add_app_commands(commands: Any, json_option: argparse.ArgumentParser) -> None:
    group = _group(commands, "app", "add, remove and list a domain's apps")

    add = _command(
        group, "add", domains.add_app, "add an app, or restore a removed one"
    )
    add.add_argument("domain", help="domain name")
    add.add_argument("app_id", type=arguments.app_id, help="CommCare app id")
    add.add_argument("--name", help="app name shown in listings")

    remove = _command(
        group, "remove", domains.remove_app, "mark an app deleted; requests for it fail"
    )
    remove.add_argument("domain", help="domain name")
    remove.add_argument("app_id", help="CommCare app id")

    listing = _command(
        group, "list", domains.list_apps, "list a domain's apps", parents=[json_option]
    )
    listing.add_argument("domain", help="domain name")


def _add_user_commands(commands: Any, json_option: argparse.ArgumentParser) -> None:
    group = _group(commands, "user", "add web users and change their permissions")

    add = _command(group, "add", users.add_user, "add a web user with no keys")
    add.add_argument("username", help="web username, such as admin@example.org")

    show = _command(
        group,
        "show",
        users.show_user,
        "show a web user's state and permissions",
        parents=[json_option],
    )
    show.add_argument("username", help="web username")

    for name, handler, verb in (
        ("grant", users.grant_permission, "grant"),
        ("revoke", users.revoke_permission, "revoke"),
    ):
        command = _command(group, name, handler, f"{verb} a permission in a domain")
        command.add_argument("username", help="web username")
        command.add_argument("domain", help="domain name")
        command.add_argument(
            "permission",
            choices=[EDIT_DATA],
            help="permission; edit_data allows sending reinstall SMS",
        )


def _add_key_commands(commands: Any, json_option: argparse.ArgumentParser) -> None:
    group = _group(commands, "key", "create, revoke and list API keys")

    create = _command(
        group,
        "create",
        users.create_key,
        "create an API key and print it once; only its hash is stored",
        parents=[json_option],
    )
    create.add_argument("username", help="web username")
    create.add_argument("--domain", help="restrict the key to this domain")
    create.add_argument(
        "--expires",
        type=arguments.expiry,
        metavar="ISO8601",
        help="expiry time, such as 2027-06-30T00:00:00Z (no zone means UTC)",
    )

    revoke = _command(group, "revoke", users.revoke_key, "revoke an API key by its id")
    revoke.add_argument("key_id", help="key id, as printed by key create or key list")

    listing = _command(
        group,
        "list",
        users.list_keys,
        "list a web user's key ids, restrictions, expiry and state",
        parents=[json_option],
    )
    listing.add_argument("username", help="web username")


def _add_phone_commands(commands: Any, json_option: argparse.ArgumentParser) -> None:
    group = _group(commands, "phone", "register mobile workers' phone numbers")

    register = _command(
        group, "register", phones.register_phone, "register a phone number to a domain"
    )
    register.add_argument("number", help="phone number with country code")
    register.add_argument("domain", help="domain name")
    register.add_argument(
        "--language",
        type=arguments.language,
        help="the contact's language, which picks the default message's translation",
    )
    register.add_argument(
        "--unverified",
        action="store_true",
        help="store the registration as pending; it then blocks nothing",
    )
    register.add_argument(
        "--force",
        action="store_true",
        help="move a number that is verified to another domain",
    )

    unregister = _command(
        group,
        "unregister",
        phones.unregister_phone,
        "delete a phone number's registration",
    )
    unregister.add_argument("number", help="phone number with country code")

    show = _command(
        group,
        "show",
        phones.show_phone,
        "show a phone number's registration",
        parents=[json_option],
    )
    show.add_argument("number", help="phone number with country code")


def _add_translation_commands(
    commands: Any, json_option: argparse.ArgumentParser
) -> None:
    group = _group(
        commands, "translation", "set a domain's translations of the default message"
    )

    change = _command(
        group,
        "set",
        domains.set_translation,
        "set the default first message in one language; {} is where the link goes",
    )
    change.add_argument("domain", help="domain name")
    change.add_argument("language", type=arguments.language, help="language code")
    change.add_argument("text", help="message text with exactly one {} placeholder")

    listing = _command(
        group,
        "list",
        domains.list_translations,
        "list a domain's translations",
        parents=[json_option],
    )
    listing.add_argument("domain", help="domain name")


def _add_log_commands(commands: Any, json_option: argparse.ArgumentParser) -> None:
    group = _group(commands, "log", "read the SMS log")

    show = _command(
        group,
        "show",
        logs.show_log,
        "show the SNS publish attempts of one request or one phone number",
        parents=[json_option],
    )
    show.add_argument("--domain", required=True, help="domain name")
    subject = show.add_mutually_exclusive_group(required=True)
    subject.add_argument(
        "--request-id", help="API Gateway request id of the reinstall request"
    )
    subject.add_argument(
        "--phone",
        metavar="NUMBER",
        help="phone number with country code; its records are shown newest first",
    )
    show.add_argument(
        "--limit",
        type=arguments.positive_int,
        help="maximum number of records to show for --phone (default: all)",
    )
    show.add_argument(
        "--show-numbers",
        action="store_true",
        help="show phone numbers in full instead of masked",
    )


def open_repository(args: argparse.Namespace) -> Repository:
    client = boto3.client(
        "dynamodb", endpoint_url=args.endpoint_url, region_name=args.region
    )
    return Repository(args.table, client)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    if not args.table:
        print(
            f"{PROG}: error: no table given; pass --table or set TABLE_NAME",
            file=sys.stderr,
        )
        return 2

    try:
        return int(args.handler(args, open_repository(args)))
    except AdminError as error:
        return _fail(str(error))
    except NoRegionError:
        return _fail("No AWS region configured; pass --region or set AWS_REGION.")
    except NoCredentialsError:
        return _fail("No AWS credentials found; configure them as for the AWS CLI.")
    except EndpointConnectionError as error:
        return _fail(f"Cannot reach DynamoDB: {error}.")
    except ClientError as error:
        return _fail(_describe_client_error(error, args.table))
    except BotoCoreError as error:
        return _fail(f"AWS request failed: {error}.")


def _describe_client_error(error: ClientError, table: str) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    if code == "ResourceNotFoundException":
        return (
            f"Table {table!r} not found in this account and region; check --table, "
            f"--region and --endpoint-url."
        )
    return f"DynamoDB request failed ({code}): {message}"


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
