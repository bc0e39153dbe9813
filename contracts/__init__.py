"""The bottom floor: the shapes every other layer agrees on, and nothing else.

Events, business ids, search-attribute keys, the models each activity takes and returns (with typed stubs the
workflow calls them through), the workflow's query and result models, and the root of every error. It imports
nothing of ours, so the workflow sandbox, the activities, the API and the tests can all depend on it without
dragging each other in. Fields are only ever added with defaults: recorded histories must still deserialize.
"""
