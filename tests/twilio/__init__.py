"""Offline Twilio test harness: Prism serving Twilio's OpenAPI spec, canned error bodies, fixtures.

See docs/twilio-testing.md. The constants are the credentials every Twilio test uses: Prism checks
the Account SID's pattern and that Basic auth is present, never the values.
"""

TEST_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TEST_AUTH_TOKEN = "test-auth-token"
