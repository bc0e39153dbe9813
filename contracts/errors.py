"""The one exception tree of journeys. Every exception class of ours derives from one of these families.

    JourneysError                    anything of ours                                         exit 1, HTTP 500
     +-- ConfigurationError          JOURNEYS_* settings, providers, codec keys, API keys,     exit 2, HTTP 500
     |    |                          a missing binary: the operator fixes the environment
     |    +-- NotConfigured          an optional part that was asked for is not set up         exit 2, HTTP 404
     |                               (the codec server, a receipts webhook)
     +-- InputError                  the caller's mistake: a map, an expression, an event,     exit 1, HTTP 400
     |    |                          a request body
     |    +-- UsageError             a command-line argument                                   exit 2
     |    +-- AccessDenied           no valid API key or signature                             HTTP 401
     +-- DeliveryError               a provider did not take a message (activities.channels:
     |                               RetryableDeliveryError, PermanentDeliveryError)
     +-- UnavailableError            something we need did not answer or is taken: Temporal,   exit 1, HTTP 503
     |                               a port, a child process; trying later may work
     +-- StorageError                the database refused or could not be reached              exit 1, HTTP 503
          +-- SchemaError            the database's schema is not the one this code expects

The exit codes and statuses are applied in one place each: ``starter/exit_codes.py`` (the ``journeys`` command)
and ``starter/api/errors.py`` (the event API); both walk the error's classes, most specific first, so a new error
only needs the right family. Third-party errors are translated into these where they would reach a boundary
(``raise OurError(...) from exc``), never leaked upward.

Temporal sees class names: an activity's error reaches a workflow as an ``ApplicationError`` whose ``type`` is the
class name (or the ``type=`` given), and the workflows' retry policies and the recorded histories name them
(``PermanentDeliveryError``, ``TemplateError``). Deriving from this tree changes no name; renaming one would.

This module imports nothing of ours: every floor may raise these.
"""

from __future__ import annotations


class JourneysError(Exception):
    """The root: ``except JourneysError`` catches every error of ours and nothing else."""


class ConfigurationError(JourneysError):
    """A setting is missing or wrong; the message names the setting (``JOURNEYS_CODEC_KEYS: key 1: ...``)."""


class NotConfigured(ConfigurationError):
    """An optional part was asked for but is not set up; the message names the setting that turns it on."""


class InputError(JourneysError):
    """What the caller gave is wrong: a map, an expression, an event, a request; the message says where."""


class UsageError(InputError):
    """A command-line argument is wrong (``--workers must be at least 1``)."""


class AccessDenied(InputError):
    """The request carries no valid API key or signature."""


class DeliveryError(JourneysError):
    """A provider did not take the message (``activities.channels.base`` has the retryable and permanent kinds)."""


class UnavailableError(JourneysError):
    """Something we need did not answer, or is taken (Temporal, a port, a child process): trying later may work."""


class StorageError(JourneysError):
    """The database refused the work or could not be reached; the message never carries row values."""


class SchemaError(StorageError):
    """The database's schema is not the one this code expects (e.g. behind: ``journeys setup`` upgrades it)."""
