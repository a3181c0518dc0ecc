//! Reading a primaries list and a standbys list of `http(s)://host:port` addresses into
//! levee-client endpoints: the one rule behind `[gateway]`'s groups and `[provider]`'s URLs.

use levee::client::{Endpoint, InvalidEndpoint};

/// One list of addresses: the setting that holds it, its entries, and whether they are
/// standbys.
pub(crate) type AddressList<'a> = (&'static str, &'a [String], bool);

/// The first address that is not an endpoint: where it is and why.
pub(crate) struct BadAddress<'a> {
    /// The setting that holds it.
    pub(crate) setting: &'static str,
    /// Its position in that setting's list.
    pub(crate) index: usize,
    /// The address as written.
    pub(crate) address: &'a str,
    /// What is wrong with it.
    pub(crate) error: InvalidEndpoint,
}

/// The endpoints of `lists`, in order (primaries first when they come first); each address
/// is trimmed, so a list written across lines in a file or an environment variable reads
/// the same.
pub(crate) fn read_endpoints<'a>(
    lists: [AddressList<'a>; 2],
) -> Result<Vec<Endpoint>, BadAddress<'a>> {
    let mut endpoints = Vec::with_capacity(lists.iter().map(|(_, list, _)| list.len()).sum());
    for (setting, list, standby) in lists {
        for (index, address) in list.iter().enumerate() {
            let endpoint = Endpoint::new(address.trim()).map_err(|error| BadAddress {
                setting,
                index,
                address,
                error,
            })?;
            endpoints.push(if standby { endpoint.standby() } else { endpoint });
        }
    }
    Ok(endpoints)
}
