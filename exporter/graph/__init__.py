"""Everything that talks to Microsoft Graph. No Graph JSON leaves this package."""
